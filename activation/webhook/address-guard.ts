// Refuses webhook destinations that resolve to addresses a tenant must not reach from our
// network (loopback, private, link-local incl. cloud metadata, unspecified, CGNAT, ...).
// The check runs inside the socket's DNS lookup, on the addresses actually connected to,
// so a name that resolves differently the second time (DNS rebinding) is caught too.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

export interface GuardPolicy {
  allowLoopback: boolean;
  allowPrivate: boolean;
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

const internal = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  internal.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const)
  internal.addSubnet(net, bits, 'ipv6');

/** Why an address is refused under a policy, or undefined if it may be reached. */
export function refusal(address: string, policy: GuardPolicy): string | undefined {
  let addr = address;
  let family = isIP(addr);
  if (family === 0) return `"${address}" is not an IP address`;
  // IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address it carries
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped?.[1]) {
    addr = mapped[1];
    family = 4;
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (loopback.check(addr, type)) return policy.allowLoopback ? undefined : `loopback address ${address}`;
  if (internal.check(addr, type))
    return policy.allowPrivate ? undefined : `private or reserved address ${address}`;
  return undefined;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** Resolves a name to all its addresses (node:dns lookup; tests pass their own). */
export type Resolve = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** A `lookup` for http.request that fails the connection when any resolved address is refused. */
export function guardedLookup(policy: GuardPolicy, resolve: Resolve = dnsLookup as unknown as Resolve) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        const why = refusal(a.address, policy);
        if (why) {
          const e = new Error(
            `destination refused: ${hostname} resolves to a ${why}`,
          ) as NodeJS.ErrnoException;
          e.code = 'EDESTREFUSED';
          return callback(e, []);
        }
      }
      if ((options as { all?: boolean }).all) return callback(null, list);
      const first = list[0];
      if (!first)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
