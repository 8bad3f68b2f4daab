/**
 * The decoder side of wgsam: prompt encoder, two-way transformer mask decoder and mask
 * postprocess. `SamDecoder.predict(embedding, prompts, opts)` is the entry point; prompts are
 * in original-image pixels. See mask_decoder.ts.
 */
export {
  type DecoderOptions,
  type DecoderPrompt,
  type DecoderResult,
  SamDecoder,
} from "./mask_decoder.ts";
export { defaultMultimask, preprocessShape, toFramePrompt } from "./transforms.ts";
export { unpackMaskBits } from "./postprocess.ts";
