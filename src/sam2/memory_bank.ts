/**
 * Which memories a frame attends to, and how they are laid out for the memory attention
 * (sam2_base `_prepare_memory_conditioned_features`, non-initial frames):
 *
 * Spatial memories: every conditioning frame (max_cond_frames_in_attn = -1 in SAM 2.1) at
 * t_pos 0, then for t_pos = 1 .. num_maskmem - 1 the non-conditioning frame t_rel =
 * num_maskmem - t_pos steps back (forward: frame - 1 for t_rel 1, else (frame - 2) - (t_rel - 2)
 * with stride 1; mirrored in reverse), skipped when absent. Each contributes its s*s feature
 * tokens, with pos = maskmem_pos_enc + maskmem_tpos_enc[num_maskmem - t_pos - 1].
 *
 * Object pointers: conditioning frames not in the future (only_obj_ptrs_in_the_past_for_eval)
 * at signed distance (frame - t) * (reverse ? -1 : 1), then non-conditioning frames t_diff =
 * 1 .. min(num_frames, max_obj_ptrs_in_encoder) - 1 steps back. A pointer [C] becomes C / mem_dim
 * tokens; its pos is obj_ptr_tpos_proj(sine_pe(t / t_diff_max, C)), repeated per token.
 * Pointer tokens come last (num_obj_ptr_tokens: no RoPE).
 */

export interface MemoryPlanOptions {
  numMaskmem: number;
  /** max_obj_ptrs_in_encoder (16). */
  maxObjPtrs: number;
  /** Frames in the video so far (the official's num_frames). */
  numFrames: number;
  reverse: boolean;
}

export interface MemoryPlan {
  /** Spatial memories in concatenation order: frame index and t_pos. */
  spatial: { frame: number; tPos: number }[];
  /** Object pointers in order: frame index and the signed distance fed to the sine encoding. */
  pointers: { frame: number; pos: number }[];
  /** t_diff_max: the pointer distances are divided by it. */
  tDiffMax: number;
}

/**
 * condFrames: the object's conditioning frames in the order they were added (Python dict
 * order); nonCond: frames with a tracked (non-conditioning) output.
 */
export function planMemory(
  frameIdx: number,
  condFrames: readonly number[],
  nonCond: ReadonlySet<number>,
  o: MemoryPlanOptions,
): MemoryPlan {
  if (condFrames.length === 0) {
    throw new Error("planMemory: a tracked frame needs at least one conditioning frame");
  }
  const spatial = condFrames.map((frame) => ({ frame, tPos: 0 }));
  for (let tPos = 1; tPos < o.numMaskmem; tPos++) {
    const tRel = o.numMaskmem - tPos;
    let prev: number;
    if (tRel === 1) prev = o.reverse ? frameIdx + 1 : frameIdx - 1;
    else prev = o.reverse ? frameIdx + 2 + (tRel - 2) : frameIdx - 2 - (tRel - 2);
    if (nonCond.has(prev)) spatial.push({ frame: prev, tPos });
  }
  const maxPtrs = Math.min(o.numFrames, o.maxObjPtrs);
  const sign = o.reverse ? -1 : 1;
  const pointers = condFrames
    .filter((t) => (o.reverse ? t >= frameIdx : t <= frameIdx))
    .map((frame) => ({ frame, pos: (frameIdx - frame) * sign }));
  for (let tDiff = 1; tDiff < maxPtrs; tDiff++) {
    const t = o.reverse ? frameIdx + tDiff : frameIdx - tDiff;
    if (t < 0 || t >= o.numFrames) break;
    if (nonCond.has(t)) pointers.push({ frame: t, pos: tDiff });
  }
  return { spatial, pointers, tDiffMax: maxPtrs - 1 };
}

const f = Math.fround;

/** get_1d_sine_pe(pos / tDiffMax, dim) in float32: [sin(p / dim_t) (dim/2), cos (dim/2)]. */
export function pointerSinePe(pos: readonly number[], tDiffMax: number, dim: number): Float32Array {
  const half = dim / 2;
  const dimT = Float32Array.from(
    { length: half },
    (_, i) => f(10000 ** f((2 * Math.floor(i / 2)) / half)),
  );
  const out = new Float32Array(pos.length * dim);
  pos.forEach((p, r) => {
    const x = f(p / tDiffMax);
    for (let i = 0; i < half; i++) {
      const a = f(x / dimT[i]);
      out[r * dim + i] = Math.sin(a);
      out[r * dim + half + i] = Math.cos(a);
    }
  });
  return out;
}

export interface MemoryWeights {
  /** maskmem_tpos_enc [numMaskmem, memDim]. */
  maskmemTposEnc: Float32Array;
  /** obj_ptr_tpos_proj: weight [memDim, C], bias [memDim]. */
  tposProjW: Float32Array;
  tposProjB: Float32Array;
  C: number;
  memDim: number;
}

export interface AssembledMemory {
  /** [M, memDim] memory tokens and their pos, pointer tokens last. */
  memory: Float32Array;
  memoryPos: Float32Array;
  numObjPtrTokens: number;
}

/**
 * Concatenates the planned memories: `features(frame)` / `posEnc(frame)` give a frame's
 * [s*s, memDim] memory (float32 values), `pointer(frame)` its object pointer [C].
 */
export function assembleMemory(
  plan: MemoryPlan,
  w: MemoryWeights,
  features: (frame: number) => Float32Array,
  posEnc: (frame: number) => Float32Array,
  pointer: (frame: number) => Float32Array,
): AssembledMemory {
  const { C, memDim: md } = w;
  const numMaskmem = w.maskmemTposEnc.length / md;
  const perPtr = C / md;
  const parts: Float32Array[] = [], posParts: Float32Array[] = [];
  for (const { frame, tPos } of plan.spatial) {
    const feats = features(frame), pe = posEnc(frame);
    const tpos = w.maskmemTposEnc.subarray((numMaskmem - tPos - 1) * md, (numMaskmem - tPos) * md);
    parts.push(feats);
    posParts.push(pe.map((v, i) => v + tpos[i % md]));
  }
  if (plan.pointers.length > 0) {
    const sine = pointerSinePe(plan.pointers.map((p) => p.pos), plan.tDiffMax, C);
    for (let k = 0; k < plan.pointers.length; k++) {
      const ptr = pointer(plan.pointers[k].frame);
      if (ptr.length !== C) {
        throw new Error(`assembleMemory: pointer has ${ptr.length} values, need ${C}`);
      }
      // obj_ptr_tpos_proj (Linear C -> memDim) of the sine encoding, float32 like torch.
      const pos = new Float32Array(md);
      for (let o = 0; o < md; o++) {
        let s = 0;
        for (let i = 0; i < C; i++) s += sine[k * C + i] * w.tposProjW[o * C + i];
        pos[o] = f(s + w.tposProjB[o]);
      }
      parts.push(ptr); // C values = perPtr consecutive tokens of memDim
      const rep = new Float32Array(perPtr * md);
      for (let t = 0; t < perPtr; t++) rep.set(pos, t * md);
      posParts.push(rep);
    }
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const memory = new Float32Array(total), memoryPos = new Float32Array(total);
  let off = 0;
  parts.forEach((p, i) => {
    memory.set(p, off);
    memoryPos.set(posParts[i], off);
    off += p.length;
  });
  return { memory, memoryPos, numObjPtrTokens: plan.pointers.length * perPtr };
}
