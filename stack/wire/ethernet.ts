/** Ethernet II frame (IEEE 802.3 with an EtherType), without preamble or FCS. */
export const ETH = {
  DST: 0,
  SRC: 6,
  ETHERTYPE: 12,
  HEADER_LEN: 14,
} as const;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;

export interface EthernetRepr {
  dst: Uint8Array;
  src: Uint8Array;
  ethertype: number;
}

export function ethertype(frame: Uint8Array): number {
  return (frame[ETH.ETHERTYPE]! << 8) | frame[ETH.ETHERTYPE + 1]!;
}

/** Returns the header fields, or undefined if the frame is too short to hold a header. */
export function parseEthernet(frame: Uint8Array): EthernetRepr | undefined {
  if (frame.length < ETH.HEADER_LEN) return undefined;
  return { dst: frame.subarray(0, 6), src: frame.subarray(6, 12), ethertype: ethertype(frame) };
}

/** Write an Ethernet header at the start of `frame`. */
export function emitEthernet(frame: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): void {
  frame.set(dst, ETH.DST);
  frame.set(src, ETH.SRC);
  frame[ETH.ETHERTYPE] = type >>> 8;
  frame[ETH.ETHERTYPE + 1] = type & 0xff;
}
