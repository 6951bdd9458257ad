/** PEM encoding (RFC 7468): base64 of the DER in 64-character lines between labelled markers. */
export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n?$/, "\n")}-----END ${label}-----\n`;
}
