// Realistic Segment track events for the benchmark, built once up front. Each messageId
// ends in ID_SLOT, a fixed-width placeholder the load generator overwrites in place with
// (connection, sequence) digits, so every event sent is unique at almost no cost.

/** 4 digits of connection index + 12 digits of per-connection sequence. */
export const ID_SLOT = '#'.repeat(16);

const PRODUCTS = [
  ['sku-10482', 'Trail Running Shoe', 129.99, 'Footwear'],
  ['sku-20931', 'Merino Wool Socks', 18.5, 'Accessories'],
  ['sku-33307', 'Waterproof Shell Jacket', 249.0, 'Outerwear'],
  ['sku-41220', 'Insulated Water Bottle', 34.95, 'Gear'],
  ['sku-58814', 'Ultralight Daypack 22L', 89.0, 'Bags'],
] as const;
const EVENTS = ['Product Viewed', 'Product Added', 'Checkout Started', 'Product Clicked'] as const;

/** A track event as analytics.js sends it, about 400 bytes of JSON. Deterministic in `i`. */
export function trackEvent(i: number, nonce: string): Record<string, unknown> {
  const [sku, name, price, category] = PRODUCTS[i % PRODUCTS.length]!;
  const user = (i * 7919) % 5000;
  return {
    type: 'track',
    event: EVENTS[i % EVENTS.length],
    userId: `user-${String(user).padStart(5, '0')}`,
    anonymousId: `8f2c1e4a-${String(user).padStart(4, '0').slice(-4)}-4b7d-9e31-5a6c0d2f${String(user).padStart(4, '0').slice(-4)}`,
    messageId: `${nonce}-${i}-${ID_SLOT}`,
    timestamp: '2025-03-14T09:26:53.589Z',
    properties: { product_id: sku, name, price, currency: 'USD', category },
    context: {
      library: { name: 'analytics.js', version: '1.70.0' },
      page: { path: `/products/${sku}` },
      locale: 'en-US',
    },
  };
}

/** `count` different single-event bodies for /v1/track. */
export function singleBodies(count: number, nonce: string): string[] {
  return Array.from({ length: count }, (_, i) => JSON.stringify(trackEvent(i, nonce)));
}

/** `count` different /v1/batch bodies of `perBatch` events each. */
export function batchBodies(count: number, perBatch: number, nonce: string): string[] {
  return Array.from({ length: count }, (_, b) =>
    JSON.stringify({
      batch: Array.from({ length: perBatch }, (_, j) => trackEvent(b * perBatch + j, nonce)),
      sentAt: '2025-03-14T09:26:53.700Z',
    }),
  );
}

/** The body with its placeholders filled (e.g. to normalise the events outside the load generator). */
export function fillSlots(body: string, fill = '0'.repeat(ID_SLOT.length)): string {
  return body.split(ID_SLOT).join(fill);
}
