/**
 * The cases: their labels in the table, the photo size the decoder cases resize to, the
 * prompts ours gets (the same points as the peer's), the encoder input, and where the shared
 * fixtures are.
 */
import type { Prompt } from "../../src/types.ts";
import { DECODER_POINTS } from "../peer/ort_peer.ts";

export const LABELS: Record<string, string> = {
  encoder_sam_mini: "encoder sam-mini (1024 px, 128 wide, 4 blocks)",
  encoder_vit_b: "encoder ViT-B",
  encoder_vit_l: "encoder ViT-L",
  encoder_vit_h: "encoder ViT-H",
  encoder_mobilesam: "encoder MobileSAM (TinyViT-5M, random weights)",
  encoder_slimsam_77: "encoder SlimSAM-77 (ViT 168 wide, 12 blocks, random weights)",
  encoder_sam2_mini: "encoder SAM 2.1 sam2-mini (1024 px, Hiera 8 wide)",
  encoder_sam2_hiera_t: "encoder SAM 2.1 Hiera-T",
  encoder_sam2_hiera_b_plus: "encoder SAM 2.1 Hiera-B+",
  decoder_1p_upscaled: "decoder, 1 prompt (2 points), 4 masks to 1200x1800",
  decoder_1p_lowres: "decoder, 1 prompt (2 points), low-res only",
  decoder_64p_upscaled: "decoder, 64 prompts, 4 masks each to 1200x1800",
  decoder_64p_lowres: "decoder, 64 prompts, low-res only",
  decoder_sam2_1p_upscaled:
    "decoder SAM 2.1 (sam2-mini: 256 wide), 1 prompt (2 points), 4 masks to 1200x1800",
  decoder_sam2_1p_lowres:
    "decoder SAM 2.1 (sam2-mini: 256 wide), 1 prompt (2 points), low-res only",
  amg_32: "AMG 32x32 points on a 1800x1200 photo",
};

export const ORIG_HW: [number, number] = [1200, 1800];

/**
 * Two labelled points per prompt (foreground, background), prompt 0 at the same places as the
 * peer's (DECODER_POINTS); the prompts of a batch move the foreground point over an 8x8 grid.
 */
export function oursPrompt(k = 0): Prompt {
  const [h, w] = ORIG_HW;
  const [[fx, fy], [bx, by]] = DECODER_POINTS;
  const dx = k === 0 ? 0 : ((k % 8) - 4) * 0.05, dy = k === 0 ? 0 : (Math.floor(k / 8) - 4) * 0.05;
  return {
    points: [[(fx + dx) * w, (fy + dy) * h], [bx * w, by * h]],
    labels: [1, 0],
    multimask: true,
  };
}

/** A deterministic normalised (3, S, S) input. */
export function encoderInput(size: number): Float32Array {
  const a = new Float32Array(3 * size * size);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
  return a;
}

const FIXTURES = new URL("../../../shared/fixtures/", import.meta.url);

/** A file of ../shared/fixtures, or null where it is absent (its cases are "not measured"). */
export function fixturePath(rel: string): string | null {
  const url = new URL(rel, FIXTURES);
  try {
    Deno.statSync(url);
    return url.pathname;
  } catch {
    return null;
  }
}
