/** ARP for IPv4 over Ethernet (RFC 826). Offsets are from the start of the ARP packet. */
export const ARP = {
  HTYPE: 0,
  PTYPE: 2,
  HLEN: 4,
  PLEN: 5,
  OPER: 6,
  SHA: 8,
  SPA: 14,
  THA: 18,
  TPA: 24,
  LEN: 28,
} as const;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface ArpRepr {
  op: number;
  sha: Uint8Array; // 6
  spa: Uint8Array; // 4
  tha: Uint8Array; // 6
  tpa: Uint8Array; // 4
}

export type ArpParseError = "truncated" | "unsupported_hardware" | "unsupported_protocol";

/** Parse an ARP packet; the returned byte fields are views into `p`. */
export function parseArp(p: Uint8Array): ArpRepr | ArpParseError {
  if (p.length < ARP.LEN) return "truncated";
  if (((p[ARP.HTYPE]! << 8) | p[ARP.HTYPE + 1]!) !== 1 || p[ARP.HLEN] !== 6) return "unsupported_hardware";
  if (((p[ARP.PTYPE]! << 8) | p[ARP.PTYPE + 1]!) !== 0x0800 || p[ARP.PLEN] !== 4) return "unsupported_protocol";
  return {
    op: (p[ARP.OPER]! << 8) | p[ARP.OPER + 1]!,
    sha: p.subarray(ARP.SHA, ARP.SHA + 6),
    spa: p.subarray(ARP.SPA, ARP.SPA + 4),
    tha: p.subarray(ARP.THA, ARP.THA + 6),
    tpa: p.subarray(ARP.TPA, ARP.TPA + 4),
  };
}

export function emitArp(p: Uint8Array, r: ArpRepr): void {
  p[ARP.HTYPE] = 0;
  p[ARP.HTYPE + 1] = 1;
  p[ARP.PTYPE] = 0x08;
  p[ARP.PTYPE + 1] = 0x00;
  p[ARP.HLEN] = 6;
  p[ARP.PLEN] = 4;
  p[ARP.OPER] = r.op >>> 8;
  p[ARP.OPER + 1] = r.op & 0xff;
  p.set(r.sha, ARP.SHA);
  p.set(r.spa, ARP.SPA);
  p.set(r.tha, ARP.THA);
  p.set(r.tpa, ARP.TPA);
}
