/**
 * The fixtures' prompt cases (fixture.json `prompts`, arguments of SamPredictor.predict in
 * original-image pixels) as decoder prompts, with their goldens.
 */
import type { DecoderPrompt } from "../../src/decoder/mask_decoder.ts";
import { fixtureJson, loadGolden } from "../util/fixtures.ts";

export interface FixtureCase {
  name: string;
  /** One prompt, or the three of boxes_batch. */
  prompts: DecoderPrompt[];
  multimask: boolean;
  /** Per prompt: (C, H, W) logits (empty where the fixture has none, as mobilesam), (C) IoU,
   * (C, 4s, 4s) low-res logits. */
  masks: Float32Array;
  iou: Float32Array;
  lowRes: Float32Array;
}

interface JsonCase {
  point_coords?: [number, number][];
  point_labels?: number[];
  box?: [number, number, number, number];
  boxes?: [number, number, number, number][];
  mask_input?: string;
  multimask_output: boolean;
}

export async function loadFixtureCases(dir: URL): Promise<{
  cases: FixtureCase[];
  imageSizeHw: [number, number];
}> {
  const json = await fixtureJson(dir);
  const cases: FixtureCase[] = [];
  for (const [name, c] of Object.entries(json.prompts as Record<string, JsonCase>)) {
    let prompts: DecoderPrompt[];
    if (c.boxes) {
      prompts = c.boxes.map((box) => ({ box }));
    } else {
      const p: DecoderPrompt = {};
      if (c.point_coords) {
        p.points = c.point_coords;
        p.labels = c.point_labels;
      }
      if (c.box) p.box = c.box;
      if (c.mask_input) p.maskInput = (await loadGolden(dir, c.mask_input)).data as Float32Array;
      prompts = [p];
    }
    const g = async (suffix: string) =>
      (await loadGolden(dir, `${name}_${suffix}.npy`)).data as Float32Array;
    cases.push({
      name,
      prompts,
      multimask: c.multimask_output,
      masks: await g("masks").catch((e) => {
        if (e instanceof Deno.errors.NotFound) return new Float32Array(0);
        throw e;
      }),
      iou: await g("iou"),
      lowRes: await g("low_res"),
    });
  }
  return { cases, imageSizeHw: json.image_size_hw };
}
