/** Official FLOP counts of the SAM 2 image encoder, for the benches (no side effects). */
import type { Sam2Arch } from "../../src/sam2/arch.ts";
import { hieraBlocks } from "../../src/sam2/hieradet.ts";

/**
 * FLOPs of one official forward: patch embed, per block the shortcut projection, qkv and the
 * attention projection over the padded window rows, q k^T and attn v, the MLP; the neck's 1x1
 * convs and conv_s0 / conv_s1. Norms, pooling, adds: not counted.
 */
export function flopsSam2Encoder(arch: Sam2Arch): number {
  const S = arch.imgSize, E = arch.trunk.embedDim, C = arch.dModel, r = arch.trunk.mlpRatio;
  let f = 2 * (S / 4) ** 2 * 147 * E;
  for (const b of hieraBlocks(arch)) {
    const rows = b.batch * b.nk, qRows = b.batch * b.nq;
    if (b.dimIn !== b.dimOut) f += 2 * b.h * b.w * b.dimIn * b.dimOut;
    f += 2 * rows * b.dimIn * 3 * b.dimOut; // qkv
    f += 2 * 2 * b.batch * b.nq * b.nk * b.dimOut; // q k^T and attn v over all heads
    f += 2 * qRows * b.dimOut * b.dimOut; // attn.proj (before unpartition)
    f += 2 * 2 * b.ho * b.wo * b.dimOut * b.dimOut * r; // MLP
  }
  arch.trunk.stageDims.forEach((d, k) => (f += 2 * (S / 4 / 2 ** k) ** 2 * d * C));
  f += 2 * (S / 4) ** 2 * C * (C / 8) + 2 * (S / 8) ** 2 * C * (C / 4);
  return f;
}
