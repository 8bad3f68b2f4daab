/**
 * What a batch worker does with one image: "segment everything" (the automatic mask
 * generator, as `deno task amg`) or detect-then-segment (as `deno task detect-segment`), the
 * result as a one-image COCO instances file with compressed-RLE segmentations. Models are
 * loaded on a job's first need and kept for the next jobs of the same batch settings.
 */
import { AutomaticMaskGenerator } from "../amg/automatic_mask_generator.ts";
import type { CocoRle } from "../amg/rle.ts";
import { ModelMaskSource } from "../amg/model_source.ts";
import { SamModelBackend } from "../amg/sam_backend.ts";
import { cocoJson, detectAndSegment } from "../detect/detect_segment.ts";
import { Detector, type ExecutionProviderChoice } from "../detect/detector.ts";
import { readImageFile } from "../image.ts";
import { SamModel, SamPredictor } from "../predictor.ts";

/** How every image of a batch is processed (stored with the batch in Redis). */
export type BatchSpec =
  & { model: string }
  & (
    | { mode: "amg"; amg: Record<string, number> }
    | {
      mode: "detect";
      detector: string;
      classes: string[];
      score: number;
      iou: number;
      maxDetections: number;
      provider: ExecutionProviderChoice;
    }
  );

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: CocoRle;
  area: number;
  bbox: number[];
  score: number;
  iscrowd: 0;
  [extra: string]: unknown;
}

/** A COCO instances file; one image per job, all of them once merged. */
export interface CocoFile {
  images: { id: number; file_name: string; width: number; height: number }[];
  annotations: CocoAnnotation[];
  categories: { id: number; name: string; supercategory?: string }[];
  [extra: string]: unknown;
}

/** The one category of "segment everything": its masks have no class. */
export const AMG_CATEGORY = { id: 1, name: "object" };

export class JobRunner {
  private key = "";
  private model: SamModel | null = null;
  private backend: SamModelBackend | null = null;
  private predictor: SamPredictor | null = null;
  private detector: Detector | null = null;

  constructor(private readonly log: (line: string) => void = console.log) {}

  /** Loads (or keeps) what `spec` needs. */
  private async prepare(spec: BatchSpec): Promise<void> {
    const key = JSON.stringify([spec.model, spec.mode === "detect" ? spec.detector : null]);
    if (key === this.key) return;
    await this.dispose();
    this.log(`loading model ${spec.model}`);
    this.model = await SamModel.load(spec.model, { quiet: true });
    if (spec.mode === "amg") {
      const m = this.model;
      this.backend = SamModelBackend.fromFamily(m.ctx, m.encoder, m.decoder, m.name);
    } else {
      this.predictor = new SamPredictor(this.model, { cacheBytes: 64 << 20 });
      this.detector = await Detector.load(spec.detector, { executionProvider: spec.provider });
    }
    this.key = key;
  }

  /** Processes one image file; throws on a bad image (the job is then recorded failed). */
  async run(spec: BatchSpec, file: string, fileName: string): Promise<CocoFile> {
    const image = await readImageFile(file);
    await this.prepare(spec);
    const { width, height } = image;
    const images = [{ id: 1, file_name: fileName, width, height }];
    if (spec.mode === "amg") {
      const generator = AutomaticMaskGenerator.fromOfficialParams({
        ...spec.amg,
        output_mode: "coco_rle",
      });
      const rgb = image.channels === 3 ? image.data : dropAlpha(image.data, width * height);
      const records = await generator.generate(
        { width, height, data: rgb },
        new ModelMaskSource(this.backend!),
      );
      return {
        images,
        annotations: records.map((r, i) => ({
          id: i + 1,
          image_id: 1,
          category_id: AMG_CATEGORY.id,
          segmentation: r.segmentation as CocoRle,
          area: r.area,
          bbox: r.bbox,
          score: r.predicted_iou,
          iscrowd: 0,
          predicted_iou: r.predicted_iou,
          stability_score: r.stability_score,
          point_coords: r.point_coords,
          crop_box: r.crop_box,
        })),
        categories: [AMG_CATEGORY],
      };
    }
    const result = await detectAndSegment(image, this.detector!, this.predictor!, {
      classes: spec.classes,
      scoreThreshold: spec.score,
      iouThreshold: spec.iou,
      maxDetections: spec.maxDetections,
    });
    // As deno task detect-segment writes it: COCO's ids and categories for a COCO detector.
    const coco = cocoJson(result, this.detector!.classNames, fileName);
    return {
      images,
      annotations: coco.annotations.map((a) => ({ ...a })),
      categories: coco.categories,
    };
  }

  async dispose(): Promise<void> {
    this.key = "";
    this.backend?.dispose();
    this.predictor?.dispose();
    this.model?.dispose();
    await this.detector?.dispose();
    this.backend =
      this.predictor =
      this.model =
      this.detector =
        null;
  }
}

function dropAlpha(rgba: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) rgb.set(rgba.subarray(4 * i, 4 * i + 3), 3 * i);
  return rgb;
}
