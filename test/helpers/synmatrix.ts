/**
 * Odd TCP flag combinations sent to an open port (a listener) and to a closed port, with the
 * reaction RFC 9293 §3.10.7.1-2 and Linux (tcp_v4_rcv, tcp_rcv_state_process) agree on. Shared by
 * the frame-level test (test/stack/tcp/synflags.test.ts) and the TAP test that sends the same segments
 * to paf and to the kernel side by side (test/stack/hostile.kernel.test.ts).
 */
import { ACK, CWR, ECE, FIN, PSH, RST, SYN, URG } from "../../stack/wire/tcp.js";

export type SynReaction = "synack" | "rst" | "none";

export interface SynCase {
  name: string;
  flags: number;
  /** To the listening port (true) or to a port nobody listens on. */
  open: boolean;
  /** Payload bytes carried. */
  payload?: number;
  expect: SynReaction;
  /** The stack's counter (tcp layer) that moves by one, if the segment is dropped. */
  drop?: string;
}

export const SYN_CASES: SynCase[] = [
  { name: "SYN", flags: SYN, open: true, expect: "synack" },
  { name: "SYN+FIN", flags: SYN | FIN, open: true, expect: "none", drop: "drop_syn_fin" },
  { name: "SYN+FIN+PSH+URG", flags: SYN | FIN | PSH | URG, open: true, expect: "none", drop: "drop_syn_fin" },
  { name: "SYN+RST", flags: SYN | RST, open: true, expect: "none", drop: "drop_listen_rst" },
  { name: "SYN+URG", flags: SYN | URG, open: true, expect: "synack" },
  { name: "SYN+PSH", flags: SYN | PSH, open: true, expect: "synack" },
  { name: "SYN+ECE+CWR (ECN setup)", flags: SYN | ECE | CWR, open: true, expect: "synack" },
  { name: "SYN+ECE", flags: SYN | ECE, open: true, expect: "synack" },
  { name: "SYN with 10 bytes of data", flags: SYN, open: true, payload: 10, expect: "synack" },
  { name: "SYN+ACK", flags: SYN | ACK, open: true, expect: "rst" },
  { name: "SYN+ACK+RST", flags: SYN | ACK | RST, open: true, expect: "none", drop: "drop_listen_rst" },
  { name: "ACK", flags: ACK, open: true, expect: "rst" },
  { name: "RST", flags: RST, open: true, expect: "none", drop: "drop_listen_rst" },
  { name: "null scan", flags: 0, open: true, expect: "none", drop: "drop_no_syn" },
  { name: "FIN scan", flags: FIN, open: true, expect: "none", drop: "drop_no_syn" },
  { name: "Xmas scan (FIN+PSH+URG)", flags: FIN | PSH | URG, open: true, expect: "none", drop: "drop_no_syn" },
  { name: "all eight flags", flags: 0xff, open: true, expect: "none", drop: "drop_listen_rst" },
  { name: "SYN", flags: SYN, open: false, expect: "rst" },
  { name: "SYN+FIN", flags: SYN | FIN, open: false, expect: "rst" },
  { name: "SYN+RST", flags: SYN | RST, open: false, expect: "none" },
  { name: "SYN+ACK", flags: SYN | ACK, open: false, expect: "rst" },
  { name: "SYN+ECE+CWR", flags: SYN | ECE | CWR, open: false, expect: "rst" },
  { name: "SYN with 10 bytes of data", flags: SYN, open: false, payload: 10, expect: "rst" },
  { name: "null scan", flags: 0, open: false, expect: "rst" },
  { name: "FIN scan", flags: FIN, open: false, expect: "rst" },
  { name: "Xmas scan (FIN+PSH+URG)", flags: FIN | PSH | URG, open: false, expect: "rst" },
];

/** The RST a closed port or a listener owes (§3.10.7.1): its flags, sequence and acknowledgment numbers. */
export function expectedRst(c: SynCase, seq: number, ack: number): { flags: number; seq: number; ack: number } {
  if (c.flags & ACK) return { flags: RST, seq: ack, ack: 0 };
  const len = (c.payload ?? 0) + (c.flags & SYN ? 1 : 0) + (c.flags & FIN ? 1 : 0);
  return { flags: RST | ACK, seq: 0, ack: (seq + len) >>> 0 };
}

/** What a reply's flags say about the reaction (ECE on a SYN-ACK is the kernel's ECN answer). */
export function reactionOf(flags: number | undefined): SynReaction {
  if (flags === undefined) return "none";
  if (flags & RST) return "rst";
  if ((flags & (SYN | ACK)) === (SYN | ACK)) return "synack";
  return "none";
}
