/**
 * The decoder half of a checkpoint for the page (GET /api/decoder): only the prompt encoder
 * and mask decoder tensors, as they are stored, in one safetensors buffer with the
 * architecture in `__metadata__.wgsam_arch`, named by its SHA-256 so browsers may cache it
 * for good. Read from the checkpoint file once, on first request (a few MB; vit_h's 16 MB).
 *
 * SAM 2.1: `sam_prompt_encoder.*` and `sam_mask_decoder.*` (with the object-score token and
 * head). conv_s0 / conv_s1 come along under that prefix, a few KB the page does not read:
 * like no_mem_embed (not sent), the server has applied them to the features it serves
 * (image_embed, high_res_feats_0/1), as SAM2ImagePredictor keeps them.
 */
import { openCheckpoint } from "../weights/load.ts";
import { layoutSafetensors } from "../weights/safetensors.ts";
import type { SamArch } from "../weights/types.ts";
import type { Sam2Arch } from "../sam2/arch.ts";

/** What GET /api/decoder serves. */
export interface DecoderWeights {
  /** safetensors bytes. */
  bytes: Uint8Array;
  /** SHA-256 of `bytes`, hex. */
  sha256: string;
  arch: SamArch | Sam2Arch;
}

/** The tensor name prefixes the page's decoder reads (SAM 1). */
export const DECODER_PREFIXES = ["prompt_encoder.", "mask_decoder."] as const;

/** The same for SAM 2.1 (official SAM2Base names). */
export const SAM2_DECODER_PREFIXES = ["sam_prompt_encoder.", "sam_mask_decoder."] as const;

/** The prefixes of `arch`'s family. */
export function decoderPrefixes(arch: SamArch | Sam2Arch): readonly string[] {
  return "family" in arch && arch.family === "sam2" ? SAM2_DECODER_PREFIXES : DECODER_PREFIXES;
}

/** `__metadata__.format` of the decoder buffer. */
export const DECODER_FORMAT = "wgsam-decoder-1";

export async function buildDecoderWeights(
  path: string | URL,
  arch: SamArch | Sam2Arch,
): Promise<DecoderWeights> {
  const prefixes = decoderPrefixes(arch);
  const ckpt = await openCheckpoint(path);
  try {
    const tensors = ckpt.tensors.filter((t) => prefixes.some((p) => t.name.startsWith(p)));
    if (tensors.length === 0) {
      throw new Error(`${path}: no ${prefixes.map((p) => `${p}*`).join(" / ")} tensors`);
    }
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
