/**
 * Clear refusals for checkpoints that are whole pickled models (`torch.save(model)`) rather
 * than state dicts. Our pickle reader (pickle.ts) refuses every global a state dict does not
 * need, naming it; when that global is a model class, say what the file is and what to use
 * instead. SlimSAM's non-uniform "global" releases are such files: SlimSAM's own
 * `segment_anything_kd` classes (q, k, v split, per-block widths, the encoder inside
 * DataParallel); its uniform releases are plain state dicts.
 */

/** The SlimSAM checkpoints wgsam loads, for messages. */
export const SLIMSAM_UNIFORM_HINT =
  "use SlimSAM's uniform checkpoints instead: SlimSAM-50-uniform or SlimSAM-77-uniform " +
  "(deno task weights slimsam_50 / slimsam_77 says where to get them), or their Hugging Face " +
  "conversions (Zigeng/SlimSAM-uniform-50 / -77, model.safetensors)";

/** A better error for a pickle refused while opening `path`, or null to keep the original. */
export function explainRefusedPickle(err: unknown, path: string | URL): Error | null {
  const message = err instanceof Error ? err.message : String(err);
  const m = /refusing global '([^']+)'/.exec(message);
  if (!m) return null;
  const global = m[1];
  if (/^segment_anything_kd\./.test(global)) {
    return new Error(
      `checkpoint: ${path} is one of SlimSAM's non-uniform "global" releases: a whole pickled ` +
        `model (torch.save(model)) of SlimSAM's own classes ('${global}'), not a state dict, ` +
        `with widths that differ per block; wgsam does not load it. ${
          SLIMSAM_UNIFORM_HINT[0].toUpperCase()
        }${SLIMSAM_UNIFORM_HINT.slice(1)}.`,
    );
  }
  // A module class (torch.nn.*, a model package's class): a whole model, not a state dict.
  const cls = global.split(".").pop()!;
  if (/^torch\.nn\./.test(global) || (/^[A-Z]/.test(cls) && !/^torch\./.test(global))) {
    return new Error(
      `checkpoint: ${path} is a whole pickled model (torch.save(model), class '${global}'), ` +
        "not a state dict; wgsam reads only state dicts (it never runs pickled code): in " +
        "Python, torch.save(model.state_dict(), 'model.pth') and load that",
    );
  }
  return null;
}
