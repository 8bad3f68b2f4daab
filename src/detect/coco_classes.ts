/**
 * COCO's 80 object classes as YOLO-family detectors (Ultralytics YOLOv8, YOLO-NAS) number
 * them: contiguous ids 0..79 in the order of the score channels (person = 0, car = 2,
 * dog = 16). These are the ids the detector fixtures' truth.json uses (wgsam's `class_index`).
 * The official COCO annotation ids (1..90 with gaps, dog = 18), the `category_id`s wgsam
 * writes, are `COCO_91_IDS[classId]`.
 */
export const COCO_CLASSES: readonly string[] = Object.freeze([
  "person",
  "bicycle",
  "car",
  "motorcycle",
  "airplane",
  "bus",
  "train",
  "truck",
  "boat",
  "traffic light",
  "fire hydrant",
  "stop sign",
  "parking meter",
  "bench",
  "bird",
  "cat",
  "dog",
  "horse",
  "sheep",
  "cow",
  "elephant",
  "bear",
  "zebra",
  "giraffe",
  "backpack",
  "umbrella",
  "handbag",
  "tie",
  "suitcase",
  "frisbee",
  "skis",
  "snowboard",
  "sports ball",
  "kite",
  "baseball bat",
  "baseball glove",
  "skateboard",
  "surfboard",
  "tennis racket",
  "bottle",
  "wine glass",
  "cup",
  "fork",
  "knife",
  "spoon",
  "bowl",
  "banana",
  "apple",
  "sandwich",
  "orange",
  "broccoli",
  "carrot",
  "hot dog",
  "pizza",
  "donut",
  "cake",
  "chair",
  "couch",
  "potted plant",
  "bed",
  "dining table",
  "toilet",
  "tv",
  "laptop",
  "mouse",
  "remote",
  "keyboard",
  "cell phone",
  "microwave",
  "oven",
  "toaster",
  "sink",
  "refrigerator",
  "book",
  "clock",
  "vase",
  "scissors",
  "teddy bear",
  "hair drier",
  "toothbrush",
]);

/** The official COCO category id (instances_*.json) of each contiguous class id. */
export const COCO_91_IDS: readonly number[] = Object.freeze([
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  14,
  15,
  16,
  17,
  18,
  19,
  20,
  21,
  22,
  23,
  24,
  25,
  27,
  28,
  31,
  32,
  33,
  34,
  35,
  36,
  37,
  38,
  39,
  40,
  41,
  42,
  43,
  44,
  46,
  47,
  48,
  49,
  50,
  51,
  52,
  53,
  54,
  55,
  56,
  57,
  58,
  59,
  60,
  61,
  62,
  63,
  64,
  65,
  67,
  70,
  72,
  73,
  74,
  75,
  76,
  77,
  78,
  79,
  80,
  81,
  82,
  84,
  85,
  86,
  87,
  88,
  89,
  90,
]);

/** The supercategory of each contiguous class id, as COCO's instances files name them. */
const COCO_SUPERCATEGORY_RUNS: [string, number][] = [
  ["person", 1],
  ["vehicle", 8],
  ["outdoor", 5],
  ["animal", 10],
  ["accessory", 5],
  ["sports", 10],
  ["kitchen", 7],
  ["food", 10],
  ["furniture", 6],
  ["electronic", 6],
  ["appliance", 5],
  ["indoor", 7],
];

export interface CocoCategory {
  /** The official id (1..90 with gaps). */
  id: number;
  name: string;
  supercategory: string;
}

/** COCO's standard category list (instances_val2017.json's `categories`), in id order. */
export const COCO_CATEGORIES: readonly CocoCategory[] = Object.freeze(
  COCO_SUPERCATEGORY_RUNS.flatMap(([sup, n]) => Array<string>(n).fill(sup)).map((sup, i) => ({
    id: COCO_91_IDS[i],
    name: COCO_CLASSES[i],
    supercategory: sup,
  })),
);

/** True when a detector's class list is COCO's 80 classes in the usual order. */
export function isCocoClassList(classNames: readonly string[]): boolean {
  return classNames === COCO_CLASSES ||
    (classNames.length === COCO_CLASSES.length &&
      classNames.every((n, i) => n === COCO_CLASSES[i]));
}

/** Lower case, "_" and "-" as spaces, runs of spaces collapsed: "Teddy_Bear" -> "teddy bear". */
export function normalizeClassName(name: string): string {
  return name.trim().toLowerCase().replace(/[_\-\s]+/g, " ");
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment): insertions,
 * deletions, substitutions and swaps of two neighbours cost 1, so "cta" is 1 from "cat".
 */
export function editDistance(a: string, b: string): number {
  // d[i][j]: distance between a[0..i) and b[0..j)
  const d = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j - 1] + cost, d[i - 1][j] + 1, d[i][j - 1] + 1);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** Up to `limit` known names close to `name`: small edit distance, or one containing the other. */
export function closeClassNames(
  name: string,
  classNames: readonly string[] = COCO_CLASSES,
  limit = 3,
): string[] {
  const wanted = normalizeClassName(name);
  const ranked: { name: string; rank: number }[] = [];
  for (const known of classNames) {
    const k = normalizeClassName(known);
    const d = editDistance(wanted, k);
    // A third of the longer name's letters may be wrong (at least 2): "dgo", "cars", "moterbike".
    if (d <= Math.max(2, Math.floor(Math.max(wanted.length, k.length) / 3))) {
      ranked.push({ name: known, rank: d });
    } else if (wanted.length >= 3 && (k.includes(wanted) || wanted.includes(k))) {
      ranked.push({ name: known, rank: 100 + d }); // "ball" -> "sports ball", after typos
    }
  }
  ranked.sort((a, b) => a.rank - b.rank || classNames.indexOf(a.name) - classNames.indexOf(b.name));
  return ranked.slice(0, limit).map((r) => r.name);
}

/** A requested class name the detector does not know (an HTTP 400, not a server fault). */
export class UnknownClassError extends Error {
  constructor(message: string, readonly unknown: string[], readonly suggestions: string[][]) {
    super(message);
    this.name = "UnknownClassError";
  }
}

/**
 * The class ids a request keeps. `names` undefined or empty keeps every class (returns null);
 * otherwise each name must be a known class (case, "_" and "-" ignored) or this throws an
 * UnknownClassError naming the unknown ones with their close matches.
 */
export function resolveClassIds(
  names: readonly string[] | undefined,
  classNames: readonly string[] = COCO_CLASSES,
): Set<number> | null {
  if (!names || names.length === 0) return null;
  const index = new Map(classNames.map((n, i) => [normalizeClassName(n), i]));
  const ids = new Set<number>();
  const problems: string[] = [], unknown: string[] = [], suggestions: string[][] = [];
  for (const name of names) {
    const id = index.get(normalizeClassName(name));
    if (id !== undefined) {
      ids.add(id);
      continue;
    }
    const close = closeClassNames(name, classNames);
    unknown.push(name);
    suggestions.push(close);
    problems.push(
      `"${name}"` +
        (close.length ? ` (did you mean ${close.map((c) => `"${c}"`).join(", ")}?)` : ""),
    );
  }
  if (problems.length) {
    throw new UnknownClassError(
      `unknown class name${problems.length > 1 ? "s" : ""} ${problems.join(", ")}; ` +
        `the detector knows ${classNames.length} classes: ${classNames.join(", ")}`,
      unknown,
      suggestions,
    );
  }
  return ids;
}
