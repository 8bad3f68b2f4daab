/**
 * Loader errors in a user's words. The readers (pickle, zip, arch inference) say precisely what
 * failed inside the file; a user who passed the wrong file needs first to hear what the file is
 * not. The reader's message stays at the end, for a bug report.
 */

const ACCEPTED = "wgsam reads Segment Anything checkpoints (Meta's sam_vit_{b,l,h}_*.pth and " +
  "sam2.1_hiera_*.pt, their safetensors conversions and models of the same layout such as " +
  "sam-tiny)";

/** The error to show for `err`, raised while reading the checkpoint at `path`. */
export function checkpointError(path: string | URL, err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const name = path instanceof URL ? path.pathname : path;
  const m = err.message;
  if (/^pth: no '<prefix>\/data\.pkl'/.test(m)) {
    return new Error(
      `${name} is a zip file but not a PyTorch checkpoint: torch.save writes a data.pkl into ` +
        `it and this one has none. ${ACCEPTED}.`,
      { cause: err },
    );
  }
  if (/^pickle: /.test(m)) {
    return new Error(
      `${name} is a zip file but not a PyTorch checkpoint wgsam can read (its data.pkl: ${m}). ` +
        `${ACCEPTED}.`,
      { cause: err },
    );
  }
  if (/^inferArch: /.test(m)) {
    const detail = m.slice("inferArch: ".length).replace(/: not a SAM checkpoint\?$/, "");
    return new Error(`${name} is not a SAM checkpoint (${detail}). ${ACCEPTED}.`, {
      cause: err,
    });
  }
  return err;
}
