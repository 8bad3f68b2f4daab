/**
 * `deno task segment`: prompt SAM on one photo from the command line.
 *
 *   deno task segment <image> --point x,y[,label]... [--box x0,y0,x1,y1]... [--multimask]
 *     [--model sam-tiny|vit_b|<path>] --out <dir>
 *
 * Points and one box make one prompt; several boxes (and no points) make one prompt per box,
 * decoded in one batch. Writes mask_<prompt>_<k>.png per mask (0/255), overlay.png (the photo
 * with the masks tinted) and result.json (scores, sizes, files). Argument mistakes exit with
 * status 2 before any model is loaded; runtime failures exit 1 with a one-line message.
 */
import { getPreprocessShape } from "../encoder/preprocess.ts";
import { encodeMaskPng, encodeOverlayPng, readImageFile } from "../image.ts";
import { SamModel, SamPredictor } from "../predictor.ts";
import type { Prompt } from "../types.ts";

const USAGE = `Usage: deno task segment <image> [prompts] --out <dir> [options]

Prompts (in pixels of the original image):
  --point x,y[,label]   a click; label 1 = foreground (default), 0 = background; repeatable
  --box x0,y0,x1,y1     a box; repeatable (several boxes without points: one mask each)
  --multimask           three candidate masks per prompt instead of one

Options:
  --model NAME|PATH     vit_b, vit_l, vit_h, sam-tiny (bundled test model, random weights)
                        or a .pth / .safetensors path; default vit_b
  --out DIR             where mask PNGs, overlay.png and result.json go (required)
`;

export class UsageError extends Error {}

export interface SegmentArgs {
  image: string;
  out: string;
  model: string;
  multimask: boolean;
  points: [number, number][];
  labels: number[];
  boxes: [number, number, number, number][];
}

function numbers(flag: string, text: string, count: number[]): number[] {
  const parts = text.split(",");
  if (!count.includes(parts.length)) {
    throw new UsageError(`${flag} ${text}: expected ${count.join(" or ")} comma-separated numbers`);
  }
  return parts.map((p) => {
    const v = Number(p.trim());
    if (p.trim() === "" || !Number.isFinite(v)) {
      throw new UsageError(`${flag} ${text}: '${p}' is not a finite number`);
    }
    return v;
  });
}

/** Parses the command line; throws UsageError with a message naming the flag. */
export function parseSegmentArgs(argv: string[]): SegmentArgs {
  const args: SegmentArgs = {
    image: "",
    out: "",
    model: "vit_b",
    multimask: false,
    points: [],
    labels: [],
    boxes: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case "--point": {
        const [x, y, label = 1] = numbers(arg, value(), [2, 3]);
        if (label !== 0 && label !== 1) {
          throw new UsageError(`--point label must be 1 (foreground) or 0 (background)`);
        }
        args.points.push([x, y]);
        args.labels.push(label);
        break;
      }
      case "--box": {
        const [x0, y0, x1, y1] = numbers(arg, value(), [4]);
        if (x1 < x0 || y1 < y0) throw new UsageError(`--box needs x0 <= x1 and y0 <= y1`);
        args.boxes.push([x0, y0, x1, y1]);
        break;
      }
      case "--multimask":
        args.multimask = true;
        break;
      case "--model":
        args.model = value();
        break;
      case "--out":
        args.out = value();
        break;
      default:
        if (arg.startsWith("--")) throw new UsageError(`unknown flag ${arg}`);
        if (args.image) throw new UsageError(`one image only (got '${args.image}' and '${arg}')`);
        args.image = arg;
    }
  }
  if (!args.image) throw new UsageError("no image given");
  if (!args.out) throw new UsageError("--out <dir> is required");
  if (args.points.length === 0 && args.boxes.length === 0) {
    throw new UsageError("give at least one --point or --box");
  }
  if (args.points.length > 0 && args.boxes.length > 1) {
    throw new UsageError("points combine with one box only; several boxes make one prompt each");
  }
  return args;
}

/** The prompts the arguments describe. */
export function promptsOf(args: SegmentArgs): Prompt[] {
  if (args.points.length === 0) {
    return args.boxes.map((box) => ({ box, multimask: args.multimask }));
  }
  return [{
    points: args.points,
    labels: args.labels,
    box: args.boxes[0],
    multimask: args.multimask,
  }];
}

/**
 * Refuses points and box corners more than a quarter of the photo's longer side outside it
 * (the server's rule): such a click is a typo (pixels of another photo, x and y swapped), and
 * the model would silently answer it with a meaningless mask.
 */
export function checkPromptsInImage(args: SegmentArgs, width: number, height: number): void {
  const margin = 0.25 * Math.max(width, height);
  const check = (what: string, x: number, y: number) => {
    if (x < -margin || x > width + margin || y < -margin || y > height + margin) {
      throw new UsageError(
        `${what} (${x}, ${y}) is outside the ${width}x${height} image ` +
          `(at most ${margin} pixels beyond its edges)`,
      );
    }
  };
  args.points.forEach(([x, y]) => check("--point", x, y));
  args.boxes.forEach(([x0, y0, x1, y1]) => {
    check("--box corner", x0, y0);
    check("--box corner", x1, y1);
  });
}

export async function runSegment(args: SegmentArgs): Promise<void> {
  const image = await readImageFile(args.image);
  checkPromptsInImage(args, image.width, image.height);
  const model = await SamModel.load(args.model);
  try {
    // An image too thin for the model's input (its short side would be 0 px) is refused here,
    // with the model's input size, before the output folder or any GPU work.
    getPreprocessShape(image.height, image.width, model.arch.imgSize);
  } catch (e) {
    model.dispose();
    if (e instanceof RangeError) throw new UsageError(`${args.image}: ${e.message}`);
    throw e;
  }
  // Only once the model loads, so that a missing model leaves no empty output folder behind.
  await Deno.mkdir(args.out, { recursive: true });
  const predictor = new SamPredictor(model);
  try {
    const info = await predictor.setImage(image);
    const predictions = await predictor.predictBatch(promptsOf(args));
    const files: { prompt: number; mask: number; file: string; score: number }[] = [];
    const allMasks: Uint8Array[] = [];
    for (const [p, prediction] of predictions.entries()) {
      for (const [k, mask] of prediction.masks.entries()) {
        const file = `mask_${p}_${k}.png`;
        await Deno.writeFile(
          `${args.out}/${file}`,
          await encodeMaskPng(mask, info.width, info.height),
        );
        files.push({ prompt: p, mask: k, file, score: prediction.scores[k] });
        allMasks.push(mask);
      }
    }
    // The overlay shows each prompt's best mask, so candidates don't hide one another.
    const best = predictions.map((p) => p.masks[p.scores.indexOf(Math.max(...p.scores))]);
    await Deno.writeFile(`${args.out}/overlay.png`, await encodeOverlayPng(image, best));
    const result = {
      image: args.image,
      model: model.name,
      adapter: model.adapter,
      width: info.width,
      height: info.height,
      encode_ms: Math.round(info.encodeMs),
      prompts: promptsOf(args),
      masks: files,
    };
    await Deno.writeTextFile(`${args.out}/result.json`, JSON.stringify(result, null, 2) + "\n");
    console.log(`wrote ${allMasks.length} mask(s), overlay.png and result.json to ${args.out}`);
  } finally {
    predictor.dispose();
    model.dispose();
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  let args: SegmentArgs;
  try {
    args = parseSegmentArgs(Deno.args);
  } catch (err) {
    console.error(`segment: ${(err as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  try {
    await runSegment(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`segment: ${err.message}`);
      Deno.exit(2);
    }
    console.error(`segment: ${(err as Error).message}`);
    if (Deno.env.get("WGSAM_DEBUG") === "1") console.error(err);
    Deno.exit(1);
  }
}
