// The classic BPF program the responder attaches to its AF_PACKET socket, so
// the kernel hands it only ARP requests and Neighbor Solicitations instead of
// every frame on the interface; plus a tiny interpreter so tests can run it.
import { endianness } from 'node:os';

/*
 * struct sock_filter (linux/filter.h), 8 bytes, host byte order:
 *   | code (u16) | jt (u8) | jf (u8) | k (u32) |
 * Jump offsets count instructions after the next one.
 */

export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_ABS = 0x30;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;

/** Bytes of the frame accepted; the kernel trims to this. */
const ACCEPT = 0x40000;

/**
 * Accept ARP requests (EtherType 0x0806, operation 1 at byte 20: the field sits
 * at the same place for every hardware type) and ICMPv6 Neighbor Solicitations
 * carried directly in IPv6 (Next Header 58 at byte 20, ICMPv6 type 135 at byte
 * 54); drop everything else. The responder only ever answers those two, so ARP
 * replies (other hosts' conversations on a busy segment, or the kernel of the
 * same node resolving a neighbour) never wake it. VLAN tags are removed by the
 * kernel before the filter runs, so the offsets hold for tagged frames too.
 */
export function arpRequestAndNeighborSolicitationProgram(): BpfInstruction[] {
  return [
    { code: BPF_LD_H_ABS, jt: 0, jf: 0, k: 12 }, // 0: A = EtherType
    { code: BPF_JEQ_K, jt: 0, jf: 2, k: 0x0806 }, // 1: not ARP -> 4
    { code: BPF_LD_H_ABS, jt: 0, jf: 0, k: 20 }, // 2: A = ARP operation
    { code: BPF_JEQ_K, jt: 6, jf: 5, k: 1 }, // 3: request -> 10 accept, else -> 9 drop
    { code: BPF_JEQ_K, jt: 0, jf: 4, k: 0x86dd }, // 4: not IPv6 -> 9 drop
    { code: BPF_LD_B_ABS, jt: 0, jf: 0, k: 20 }, // 5: A = IPv6 Next Header
    { code: BPF_JEQ_K, jt: 0, jf: 2, k: 58 }, // 6: not ICMPv6 -> 9 drop
    { code: BPF_LD_B_ABS, jt: 0, jf: 0, k: 54 }, // 7: A = ICMPv6 type
    { code: BPF_JEQ_K, jt: 1, jf: 0, k: 135 }, // 8: Neighbor Solicitation -> 10 accept
    { code: BPF_RET_K, jt: 0, jf: 0, k: 0 }, // 9: drop
    { code: BPF_RET_K, jt: 0, jf: 0, k: ACCEPT }, // 10: accept
  ];
}

/** The program as struct sock_filter[] bytes for packetOpen()/setFilter(). */
export function assemble(program: readonly BpfInstruction[]): Buffer {
  const le = endianness() === 'LE';
  const out = Buffer.alloc(program.length * 8);
  program.forEach((ins, i) => {
    if (le) {
      out.writeUInt16LE(ins.code, i * 8);
      out.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
    } else {
      out.writeUInt16BE(ins.code, i * 8);
      out.writeUInt32BE(ins.k >>> 0, i * 8 + 4);
    }
    out[i * 8 + 2] = ins.jt;
    out[i * 8 + 3] = ins.jf;
  });
  return out;
}

/** Runs the subset of classic BPF used here on a frame: returns the accepted length (0 = dropped). */
export function runFilter(program: readonly BpfInstruction[], frame: Uint8Array): number {
  let a = 0;
  for (let pc = 0; pc < program.length;) {
    const ins = program[pc]!;
    switch (ins.code) {
      case BPF_LD_H_ABS:
        if (ins.k + 2 > frame.length) return 0; // the kernel drops on an out-of-bounds load
        a = (frame[ins.k]! << 8) | frame[ins.k + 1]!;
        pc++;
        break;
      case BPF_LD_B_ABS:
        if (ins.k + 1 > frame.length) return 0;
        a = frame[ins.k]!;
        pc++;
        break;
      case BPF_JEQ_K:
        pc += 1 + (a === ins.k ? ins.jt : ins.jf);
        break;
      case BPF_RET_K:
        return Math.min(ins.k, frame.length);
      default:
        throw new Error(`runFilter: opcode 0x${ins.code.toString(16)} not supported`);
    }
  }
  return 0;
}
