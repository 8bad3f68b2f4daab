/**
 * Registry names for models with no download this program can verify: SlimSAM's uniform
 * checkpoints are published on Google Drive (SlimSAM's README) and, converted by Hugging Face
 * transformers, as `model.safetensors` of Zigeng/SlimSAM-uniform-50 / -77; neither publishes
 * a size and digest to check a download against. So `deno task weights slimsam_77` converts
 * a copy placed by hand (the tensors are validated like any checkpoint's) and otherwise
 * prints the steps to get one.
 */
import { convertCheckpoint } from "./load.ts";
import { DEFAULT_WEIGHTS_DIR, weightsDirFrom } from "./registry.ts";

export interface ManualModel {
  name: string;
  description: string;
  /** File names looked for in the weights folder, in order: the original .pth, the HF file. */
  fileNames: string[];
  /** Where the files are published, in words with URLs. */
  sources: string[];
}

export const MANUAL_MODELS: readonly ManualModel[] = [
  {
    name: "slimsam_77",
    description: "SlimSAM-77-uniform (ViT-B pruned to width 168, MLP 696), the lightest SlimSAM",
    fileNames: ["SlimSAM-77-uniform.pth", "SlimSAM-uniform-77.safetensors"],
    sources: [
      "SlimSAM-77-uniform.pth: the 'SlimSAM-77' uniform link of https://github.com/czg1225/SlimSAM (README, Google Drive)",
      "or model.safetensors of https://huggingface.co/Zigeng/SlimSAM-uniform-77 (Hugging Face format), saved as SlimSAM-uniform-77.safetensors",
    ],
  },
  {
    name: "slimsam_50",
    description: "SlimSAM-50-uniform (ViT-B pruned to width 384, MLP 1536)",
    fileNames: ["SlimSAM-50-uniform.pth", "SlimSAM-uniform-50.safetensors"],
    sources: [
      "SlimSAM-50-uniform.pth: the 'SlimSAM-50' uniform link of https://github.com/czg1225/SlimSAM (README, Google Drive)",
      "or model.safetensors of https://huggingface.co/Zigeng/SlimSAM-uniform-50 (Hugging Face format), saved as SlimSAM-uniform-50.safetensors",
    ],
  },
];

export function findManualModel(name: string): ManualModel | undefined {
  return MANUAL_MODELS.find((m) => m.name === name);
}

function converted(m: ManualModel, dir: string): string {
  return `${dir}/${m.name}.safetensors`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The steps to install `m` by hand. */
export function manualInstructions(m: ManualModel, weightsDir?: string): string {
  const dir = weightsDirFrom(weightsDir);
  const dirFlag = dir === DEFAULT_WEIGHTS_DIR ? "" : ` --dir ${dir}`;
  return [
    `model '${m.name}' has no download that wgsam can verify; get it by hand:`,
    `  1. download ${m.sources[0]}`,
    `     ${m.sources[1]}`,
    `  2. put it in ${dir}/ (as ${m.fileNames.join(" or ")})`,
    `  3. run: deno task weights ${m.name}${dirFlag}`,
    `     (or convert any path yourself: deno task convert <file> ${converted(m, dir)})`,
    `SlimSAM's non-uniform "global" releases (SlimSAM-50.pth, SlimSAM-77.pth) are whole ` +
    "pickled models and are refused; take the uniform ones.",
  ].join("\n");
}

/** The file to load for `m`: its conversion, else a file placed by hand; else the steps. */
export async function resolveManualModel(m: ManualModel, weightsDir?: string): Promise<string> {
  const dir = weightsDirFrom(weightsDir);
  if (await isFile(converted(m, dir))) return converted(m, dir);
  for (const f of m.fileNames) if (await isFile(`${dir}/${f}`)) return `${dir}/${f}`;
  throw new Error(`model '${m.name}' is not installed.\n${manualInstructions(m, weightsDir)}`);
}

/**
 * `deno task weights <name>` for `m`: converts the hand-placed file into
 * `<dir>/<name>.safetensors` (validated as any checkpoint); throws the steps when there is
 * none. Returns the converted path and whether this call converted it.
 */
export async function installManualModel(
  m: ManualModel,
  weightsDir?: string,
): Promise<{ safetensors: string; source: string | null }> {
  const dir = weightsDirFrom(weightsDir);
  const out = converted(m, dir);
  if (await isFile(out)) return { safetensors: out, source: null };
  for (const f of m.fileNames) {
    const path = `${dir}/${f}`;
    if (!(await isFile(path))) continue;
    await convertCheckpoint(path, out);
    return { safetensors: out, source: path };
  }
  throw new Error(manualInstructions(m, weightsDir));
}
