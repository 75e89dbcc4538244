// A profile's push device as the processor stores it (profiles/apply-event.lua): the hash
// `<tag>:p:<pid>:dev` maps a device key (`i:<device id>`, or `t:<token>` when the SDK sent no
// id) to `<last seen ms>|<type>|<token>`. Activation reads them to send (activation/push-devices.ts),
// the access export lists them (query/export-profile.ts).

export interface StoredPushDevice {
  key: string;
  token: string;
  /** `context.device.type`, lower-cased (ios, android, ...), or `other`. */
  type: string;
  /** Event time (ms) of its latest registration. */
  seenMs: number;
}

/** A stored device value, or undefined when malformed. */
export function parseDevice(key: string, value: string): StoredPushDevice | undefined {
  const m = /^(\d+)\|([^|]*)\|(.+)$/s.exec(value);
  if (!m) return undefined;
  return { key, seenMs: Number(m[1]), type: m[2]!, token: m[3]! };
}
