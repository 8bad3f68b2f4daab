/**
 * The decoder half of a checkpoint for the page (GET /api/decoder): only the prompt encoder
 * and mask decoder tensors, as they are stored, in one safetensors buffer with the
 * architecture in `__metadata__.wgsam_arch`, named by its SHA-256 so browsers may cache it
 * for good. Read from the checkpoint file once, on first request (a few MB; vit_h's 16 MB).
 */
import { openCheckpoint } from "../weights/load.ts";
import { layoutSafetensors } from "../weights/safetensors.ts";
import type { SamArch } from "../weights/types.ts";

/** What GET /api/decoder serves. */
export interface DecoderWeights {
  /** safetensors bytes. */
  bytes: Uint8Array;
  /** SHA-256 of `bytes`, hex. */
  sha256: string;
  arch: SamArch;
}

/** The tensor name prefixes the page's decoder reads (SAM 1). */
export const DECODER_PREFIXES = ["prompt_encoder.", "mask_decoder."] as const;

/** `__metadata__.format` of the decoder buffer. */
export const DECODER_FORMAT = "wgsam-decoder-1";

export async function buildDecoderWeights(
  path: string | URL,
  arch: SamArch,
): Promise<DecoderWeights> {
  const ckpt = await openCheckpoint(path);
  try {
    const tensors = ckpt.tensors.filter((t) => DECODER_PREFIXES.some((p) => t.name.startsWith(p)));
    if (tensors.length === 0) throw new Error(`${path}: no prompt_encoder / mask_decoder tensors`);
    const { header, offsets } = layoutSafetensors(tensors, {
      format: DECODER_FORMAT,
      wgsam_arch: JSON.stringify(arch),
    });
    const dataBytes = offsets.reduce((s, [, e]) => Math.max(s, e), 0);
    const bytes = new Uint8Array(header.length + dataBytes);
    bytes.set(header);
    for (let i = 0; i < tensors.length; i++) {
      bytes.set(await tensors[i].read(), header.length + offsets[i][0]);
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const sha256 = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    return { bytes, sha256, arch };
  } finally {
    ckpt.close();
  }
}
