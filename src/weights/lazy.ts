/** Helpers shared by the checkpoint readers: element sizes and tensors read on demand. */
import type { DType } from "./types.ts";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1,
};

/** A tensor of an open checkpoint: name, dtype and shape known, bytes read on request. */
export interface LazyTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Size of the tensor's bytes (contiguous, row-major). */
  byteLength: number;
  /** Reads the tensor's bytes, contiguous and row-major, into a fresh array. */
  read(): Promise<Uint8Array>;
}

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
