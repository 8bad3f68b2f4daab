/**
 * Shared types for checkpoints: a state dict of named tensors, and the SAM architecture
 * inferred from it.
 */

export type DType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32" | "uint8";

/** One tensor on the CPU, row-major, with its official name. */
export interface HostTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes in `dtype`, exactly as stored in the checkpoint. */
  bytes: Uint8Array;
}

/** Tensors by official name (e.g. "image_encoder.blocks.3.attn.qkv.weight"), in file order. */
export type StateDict = Map<string, HostTensor>;

/** The SAM architecture, as read from the tensor shapes of a checkpoint. */
export interface SamArch {
  /** Encoder input side (1024 for the real models). */
  imgSize: number;
  patchSize: number;
  /** ViT width (768 / 1024 / 1280 for B / L / H). */
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Hidden width of each ViT block's MLP (4 x embedDim in the official models). */
  encoderMlpDim: number;
  windowSize: number;
  globalAttnIndexes: number[];
  /** Neck output channels = prompt embedding width (256). */
  promptEmbedDim: number;
  /** Two-way transformer MLP width (2048). */
  decoderMlpDim: number;
  decoderDepth: number;
  /** Decoder attention heads: not visible in any tensor shape; 8 as in the official build. */
  decoderNumHeads: number;
  /** Width of the decoder's downsampled cross attention (promptEmbedDim / 2 officially). */
  decoderCrossAttnDim: number;
  iouHeadHiddenDim: number;
  iouHeadDepth: number;
  numMultimaskOutputs: number;
}
