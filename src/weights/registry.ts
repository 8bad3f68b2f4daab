/**
 * The model registry: Meta's official SAM checkpoints by name (where to download each, its
 * exact size and MD5), the bundled test model, and `resolveModel`, which turns a name or a
 * path into the file to load, or says exactly how to install a missing model by hand.
 *
 * Layout of the weights folder (default `weights/` under the working directory, or
 * $WGSAM_WEIGHTS_DIR): `<fileName>` is the verified official checkpoint as downloaded
 * (e.g. `weights/sam_vit_b_01ec64.pth`), `<name>.safetensors` its conversion (float32,
 * validated, architecture in the metadata) that `resolveModel` hands out.
 */
import { fileURLToPath } from "node:url";
import type { Sam2ArchHints } from "../sam2/arch.ts";
import { findManualModel, MANUAL_MODELS, resolveManualModel } from "./manual_models.ts";

/** One downloadable (or bundled) checkpoint. */
export interface ModelEntry {
  /** Registry name, e.g. "vit_b". */
  name: string;
  description: string;
  /** File name of the checkpoint as published, e.g. "sam_vit_b_01ec64.pth". */
  fileName: string;
  /** Where it is published; absent for a bundled model. */
  url?: string;
  /**
   * Exact size in bytes; absent where no trustworthy published size is known (SAM 2.1): the
   * download then takes the server's Content-Length, and a file placed by hand is not checked.
   */
  bytes?: number;
  /** Full MD5 digest, 32 lowercase hex digits; absent: not verified (none is published). */
  md5?: string;
  /** Absolute path of a model that ships with the source tree (nothing to download). */
  bundledPath?: string;
  /** SAM 2 only: what its tensor shapes do not tell (a model of no official config). */
  sam2Hints?: Sam2ArchHints;
}

/** Directory of Meta's SAM v1 release; `--url` / $WGSAM_WEIGHTS_URL replace it with a mirror. */
export const OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything";

/** Directory of Meta's SAM 2.1 release (checkpoints/download_ckpts.sh of facebookresearch/sam2). */
export const SAM2_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824";

/** Used when neither an option nor $WGSAM_WEIGHTS_DIR names the weights folder. */
export const DEFAULT_WEIGHTS_DIR = "weights";

function bundled(relative: string): string | undefined {
  const url = new URL(relative, import.meta.url);
  // Only a checkout on disk carries the fixture (not, e.g., a copy imported over https).
  return url.protocol === "file:" ? fileURLToPath(url) : undefined;
}

/*
 * Sizes and digests of the official checkpoints. The six hex digits in each file name are
 * the start of the file's MD5, which the full digests below agree with.
 *
 * MD5: Sanster/IOPaint, iopaint/plugins/interactive_seg.py (SEGMENT_ANYTHING_MODELS, used to
 * verify its downloads of these exact URLs); the same three digests appear in at least six
 * other independent public downloaders found by exact-string search of public code (e.g. the
 * download_data calls of a ROS package, tracking_ros; a gdown `md5:` hash table; an `md5sum`
 * listing of models/sam_ckpts/).
 *
 * Sizes: metercai/SimpleSDXL, model_checker.py at 031f57ff (its (path, size) table that
 * validates downloads: inpaint/sam_vit_b_01ec64.pth 375042383, inpaint/sam_vit_l_0b3195.pth
 * 1249524607, inpaint/sam_vit_h_4b8939.pth 2564550879); the same numbers appear in several
 * other public listings (a wget log "Length: 375042383 (358M)", KNOWN_CHECKPOINT_SIZES tables
 * of SAM tools). One outlier, SchmollerLab/Cell_ACDC cellacdc/myutils.py, lists 1249524736
 * for vit_l; it is the only disagreement found and no other source has it.
 */
const ENTRIES: ModelEntry[] = [
  {
    name: "vit_b",
    description: "SAM ViT-B (91M parameters), the fastest",
    fileName: "sam_vit_b_01ec64.pth",
    url: `${OFFICIAL_BASE_URL}/sam_vit_b_01ec64.pth`,
    bytes: 375_042_383,
    md5: "01ec64d29a2fca3f0661936605ae66f8",
  },
  {
    name: "vit_l",
    description: "SAM ViT-L (308M parameters)",
    fileName: "sam_vit_l_0b3195.pth",
    url: `${OFFICIAL_BASE_URL}/sam_vit_l_0b3195.pth`,
    bytes: 1_249_524_607,
    md5: "0b3195507c641ddb6910d2bb5adee89c",
  },
  {
    name: "vit_h",
    description: "SAM ViT-H (636M parameters), the most accurate",
    fileName: "sam_vit_h_4b8939.pth",
    url: `${OFFICIAL_BASE_URL}/sam_vit_h_4b8939.pth`,
    bytes: 2_564_550_879,
    md5: "4b8939a88964f0f4ff5f5b2642c598a6",
  },
  ...(["tiny", "small", "base_plus", "large"] as const).map((size) => ({
    // SAM 2.1 (facebookresearch/sam2 checkpoints/download_ckpts.sh). Meta publishes neither
    // sizes nor digests for them and none was found that could be trusted: the download is
    // checked against the server's Content-Length only, and its MD5 is printed, not verified.
    name: `sam2.1_hiera_${size}`,
    description: `SAM 2.1 Hiera-${
      { tiny: "T", small: "S", base_plus: "B+", large: "L" }[size]
    } image model (size and MD5 not verified: none published)`,
    fileName: `sam2.1_hiera_${size}.pt`,
    url: `${SAM2_BASE_URL}/sam2.1_hiera_${size}.pt`,
  })),
  {
    // MobileSAM (TinyViT-5M encoder, SAM's decoder), ChaoningZhang/MobileSAM weights/mobile_sam.pt.
    // MD5: the same digest in IOPaint's interactive_seg.py table, DEVA's download_data call
    // and another downloader's "vit_t" entry; size: two independent public tables
    // (MOBILE_SAM_WEIGHT_SIZE_BYTES, a WeightSpec approx_bytes) found by exact-string search.
    name: "mobile_sam",
    description: "MobileSAM (TinyViT-5M image encoder, SAM's decoder), the fastest",
    fileName: "mobile_sam.pt",
    url: "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
    bytes: 40_728_226,
    md5: "f3c0d8cda613564d499310dab6c812cd",
  },
  {
    // Random weights in the official architecture at toy size: for tests and demos only.
    // Size and MD5 measured on the fixture (md5sum), which must never be regenerated.
    name: "sam-tiny",
    description: "bundled test model (random weights, 256-pixel input): masks mean nothing",
    fileName: "sam-tiny.pth",
    bytes: 511_445,
    md5: "ed2fb18d86b6c1260389401fdff92cb9",
    bundledPath: bundled("../../tests/fixtures/sam-tiny/sam-tiny.pth"),
  },
  {
    // SAM 2.1 at toy size (Hiera 16 wide, 256-pixel input): for tests and demos only. Size
    // and MD5 measured on the fixture; its hints are fixture.json's `architecture`.
    name: "sam2-tiny",
    description: "bundled SAM 2.1 test model (random weights, 256-pixel input): masks mean nothing",
    fileName: "sam2-tiny.pt",
    bytes: 4_767_813,
    md5: "cc7ea58ec486032a658e2a31a3d466cb",
    bundledPath: bundled("../../tests/fixtures/sam2-tiny/sam2-tiny.pt"),
    sam2Hints: {
      imgSize: 256,
      numHeads: 1,
      windowSpec: [8, 4, 6, 3],
      globalAttBlocks: [4],
      qPool: 3,
    },
  },
];

const BY_NAME: ReadonlyMap<string, ModelEntry> = new Map(ENTRIES.map((e) => [e.name, e]));

/** Every registered model, official ones first. */
export function listModels(): ModelEntry[] {
  return [...ENTRIES];
}

/** The entry named `name`, or undefined. */
export function findModel(name: string): ModelEntry | undefined {
  return BY_NAME.get(name);
}

/** The entry named `name`; throws listing the known names otherwise. */
export function getModel(name: string): ModelEntry {
  const entry = BY_NAME.get(name);
  if (!entry) {
    throw new Error(
      `unknown model '${name}'; known models: ${ENTRIES.map((e) => e.name).join(", ")}`,
    );
  }
  return entry;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    // No --allow-env: behave as if unset.
    return undefined;
  }
}

/** The weights folder: the option, else $WGSAM_WEIGHTS_DIR, else `weights`. */
export function weightsDirFrom(weightsDir?: string): string {
  return weightsDir ?? env("WGSAM_WEIGHTS_DIR") ?? DEFAULT_WEIGHTS_DIR;
}

/** Where the download of `entry` goes: `<weightsDir>/<fileName>`. */
export function checkpointPath(entry: ModelEntry, weightsDir?: string): string {
  return `${weightsDirFrom(weightsDir)}/${entry.fileName}`;
}

/** Where its conversion goes: `<weightsDir>/<name>.safetensors`. */
export function convertedPath(entry: ModelEntry, weightsDir?: string): string {
  return `${weightsDirFrom(weightsDir)}/${entry.name}.safetensors`;
}

/** Download URL of `entry` under `baseUrl` (default: the official one, or $WGSAM_WEIGHTS_URL). */
export function downloadUrl(entry: ModelEntry, baseUrl?: string): string {
  const base = baseUrl ?? env("WGSAM_WEIGHTS_URL");
  if (base) return `${base.replace(/\/+$/, "")}/${entry.fileName}`;
  if (!entry.url) {
    throw new Error(
      `model '${entry.name}' has no download URL; name a mirror (--url or $WGSAM_WEIGHTS_URL)`,
    );
  }
  return entry.url;
}

/** "375.0 MB" / "2.56 GB" ("unknown" without a size). */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return "unknown";
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * How to install `entry` without this program reaching the network: which file to fetch
 * from where, where to put it, and the command that verifies and converts it.
 */
export function installInstructions(entry: ModelEntry, weightsDir?: string): string {
  const dir = weightsDirFrom(weightsDir);
  const dirFlag = dir === DEFAULT_WEIGHTS_DIR ? "" : ` --dir ${dir}`;
  return [
    `To download and convert it: deno task weights ${entry.name}${dirFlag}`,
    `Offline: on a machine with network access download ${entry.url ?? entry.fileName}`,
    entry.bytes !== undefined && entry.md5 !== undefined
      ? `  (${entry.bytes} bytes, MD5 ${entry.md5}), put it at ${checkpointPath(entry, dir)},`
      : `  (no published size or MD5 to check it by), put it at ${checkpointPath(entry, dir)},`,
    `  then run: deno task weights ${entry.name}${dirFlag}`,
    `  (with the file in place it only verifies the MD5 and converts, no network), or convert`,
    `  it without the check: deno task convert ${checkpointPath(entry, dir)} ${
      convertedPath(entry, dir)
    }`,
  ].join("\n");
}

async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info.size : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * The file to load for `nameOrPath`:
 * - a registry name: its converted safetensors if present, else its downloaded checkpoint
 *   (size checked; loadSam reads .pth too), else an Error saying how to install it;
 * - "sam-tiny": the bundled .pth;
 * - anything else: an existing file path, returned as given.
 */
export async function resolveModel(
  nameOrPath: string,
  opts: { weightsDir?: string } = {},
): Promise<string> {
  const manual = findManualModel(nameOrPath);
  if (manual) return await resolveManualModel(manual, opts.weightsDir);
  const entry = findModel(nameOrPath);
  if (entry && !entry.url) {
    const path = entry.bundledPath;
    if (path === undefined || (await fileSize(path)) === null) {
      throw new Error(
        `model '${entry.name}' ships only with a source checkout of wgsam ` +
          `(tests/fixtures/${entry.name}/${entry.fileName}); it is not present here`,
      );
    }
    return path;
  }
  if (entry) {
    const converted = convertedPath(entry, opts.weightsDir);
    if ((await fileSize(converted)) !== null) return converted;
    const checkpoint = checkpointPath(entry, opts.weightsDir);
    const size = await fileSize(checkpoint);
    if (size !== null && (entry.bytes === undefined ? size > 0 : size === entry.bytes)) {
      return checkpoint;
    }
    const state = size === null
      ? `model '${entry.name}' is not installed (no ${converted} or ${checkpoint})`
      : `model '${entry.name}': ${checkpoint} has ${size} bytes, the published file has ` +
        `${entry.bytes} (incomplete or a different file); delete it and install again`;
    throw new Error(`${state}.\n${installInstructions(entry, opts.weightsDir)}`);
  }
  if ((await fileSize(nameOrPath)) !== null) return nameOrPath;
  const looksLikePath = /[/\\.]/.test(nameOrPath);
  throw new Error(
    looksLikePath
      ? `no such checkpoint file: ${nameOrPath}`
      : `'${nameOrPath}' is neither a model name (${
        [...ENTRIES, ...MANUAL_MODELS].map((e) => e.name).join(", ")
      }) nor an existing file`,
  );
}

/**
 * Extra entries from JSON text `{"models": [{"name", "fileName", "bytes", "md5", "url"?,
 * "description"?}]}`, e.g. a private mirror of a fine-tuned checkpoint (`--registry` of the
 * weights CLI). Every field is checked; `source` names the file in messages.
 */
export function parseRegistry(json: string, source = "registry"): ModelEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const models = (parsed as { models?: unknown })?.models;
  if (!Array.isArray(models)) throw new Error(`${source}: expected {"models": [...]}`);
  return models.map((m: Record<string, unknown>, i) => {
    const where = `${source}: models[${i}]`;
    if (typeof m !== "object" || m === null) throw new Error(`${where} is not an object`);
    const { name, fileName, bytes, md5, url, description } = m;
    if (typeof name !== "string" || !/^[A-Za-z0-9][\w.-]*$/.test(name)) {
      throw new Error(`${where}.name must be letters, digits, '_', '-' or '.'`);
    }
    if (typeof fileName !== "string" || !/^[\w.-]+$/.test(fileName) || fileName.startsWith(".")) {
      throw new Error(`${where}.fileName must be a plain file name`);
    }
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new Error(`${where}.bytes must be a positive integer`);
    }
    if (typeof md5 !== "string" || !/^[0-9a-f]{32}$/.test(md5)) {
      throw new Error(`${where}.md5 must be 32 lowercase hex digits`);
    }
    if (url !== undefined && (typeof url !== "string" || !/^https?:\/\//.test(url))) {
      throw new Error(`${where}.url must be an http(s) URL`);
    }
    return {
      name,
      fileName,
      bytes,
      md5,
      url: url as string | undefined,
      description: typeof description === "string" ? description : `custom model ${name}`,
    };
  });
}
