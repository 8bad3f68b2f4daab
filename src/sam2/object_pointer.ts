/**
 * The object pointer of a frame (sam2_base `_forward_sam_heads`): obj_ptr_proj, an MLP of
 * 3 layers C -> C with ReLU between (use_mlp_for_obj_ptr_proj), applied to the SAM output
 * token, then, with fixed_no_obj_ptr, replaced by no_obj_ptr when the object score is <= 0:
 *   ptr = a * mlp(token) + (1 - a) * no_obj_ptr,  a = (score > 0).
 * Which token: with use_multimask_token_for_obj_ptr, the mask token of the kept multimask
 * output (best IoU) when multimask, else mask token 0, even where the decoder's stability
 * fallback returned a multimask token's mask. C is small (256): computed on the CPU in
 * float64 and rounded to float32 per layer.
 */
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";

export class ObjectPointerHead {
  private readonly layers: { w: Float32Array; b: Float32Array; n: number; k: number }[] = [];
  readonly noObjPtr: Float32Array;
  readonly dim: number;

  constructor(sd: StateDict) {
    for (let i = 0; sd.has(`obj_ptr_proj.layers.${i}.weight`); i++) {
      const w = sd.get(`obj_ptr_proj.layers.${i}.weight`)!;
      const b = sd.get(`obj_ptr_proj.layers.${i}.bias`);
      if (!b) throw new Error(`ObjectPointerHead: obj_ptr_proj.layers.${i}.bias is missing`);
      this.layers.push({ w: tensorF32(w), b: tensorF32(b), n: w.shape[0], k: w.shape[1] });
    }
    if (this.layers.length === 0) {
      throw new Error(
        "ObjectPointerHead: no obj_ptr_proj.layers.* (a linear obj_ptr_proj is not supported)",
      );
    }
    const nop = sd.get("no_obj_ptr");
    if (!nop) throw new Error("ObjectPointerHead: checkpoint has no no_obj_ptr");
    this.noObjPtr = tensorF32(nop);
    this.dim = this.layers[0].k;
  }

  /** The pointer [C] of an output token [C] and its object-score logit. */
  pointer(token: Float32Array, objScore: number): Float32Array {
    if (token.length !== this.dim) {
      throw new Error(`ObjectPointerHead: token has ${token.length} values, need ${this.dim}`);
    }
    if (!(objScore > 0)) return this.noObjPtr.slice(); // 0 * ptr + 1 * no_obj_ptr
    let x: Float32Array = token;
    this.layers.forEach((l, i) => {
      const y = new Float32Array(l.n);
      for (let o = 0; o < l.n; o++) {
        let s = l.b[o];
        for (let k = 0; k < l.k; k++) s += x[k] * l.w[o * l.k + k];
        y[o] = i < this.layers.length - 1 ? Math.max(s, 0) : s;
      }
      x = y;
    });
    return x;
  }
}
