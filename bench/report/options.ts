/**
 * The command line of `deno task bench:report`: flags, defaults, the usage text. A bad
 * argument is a UsageError (exit 2).
 */
import { parseFlags, UsageError } from "../../src/cli/args.ts";

/**
 * What --only selects. Rows of "edge" and "sam2" sit in the encoder and decoder groups of the
 * table; "variants" and "page" are sections of their own after it.
 */
export type Section = "encoder" | "edge" | "sam2" | "decoder" | "amg" | "variants" | "page";
export const SECTIONS: readonly Section[] = [
  "encoder",
  "edge",
  "sam2",
  "decoder",
  "amg",
  "variants",
  "page",
];

/** The variants section's models by default: small enough for a software adapter. */
export const DEFAULT_MODELS = ["sam-tiny", "sam-mini"];

export interface ReportOptions {
  quick: boolean;
  only: Set<Section>;
  /** Timed runs per case (encoders, decoder). */
  encoderRuns: number;
  decoderRuns: number;
  warmup: number;
  /** Per-case budget in ms: predictable cases estimated beyond it are skipped. */
  budgetMs: number;
  peer: boolean;
  outDir: string;
  /** Appended to the result files' names (<adapter>-<tag>.md), e.g. for a run of a few sections. */
  tag: string | null;
  /** The variants section's models (registry names, fixture names or paths). */
  models: string[];
  /** Variants: tune in this run where the tune cache has no table for this adapter. */
  tune: boolean;
  /** Variants with --tune: ms each candidate is timed for. */
  tuneMinMs: number;
  /** Page: the model the server loads, and timed clicks per side. */
  pageModel: string;
  pageClicks: number;
}

export const USAGE = `Usage: deno task bench:report [options]

Measures wgsam against onnxruntime-web (wasm and its WebGPU provider) on the same inputs and
writes bench/results/<adapter>.{json,md} (see bench/README.md).

  --quick           one run per case, smaller budget (120 s a case)
  --only SECTIONS   comma-separated (default: all):
                      encoder   SAM ViT encoders (sam-mini, ViT-B/L/H) against the peer
                      edge      MobileSAM (TinyViT-5M) and SlimSAM-77 encoders against the peer
                      sam2      SAM 2.1 encoders (sam2-mini, Hiera-T, Hiera-B+) and decoder
                      decoder   SAM's decoder against the peer, and the click-latency table
                      amg       the automatic mask generator
                      variants  per model: default vs tuned kernels, f32 vs f16
                      page      click latency in the browser page vs the server round trip
  --runs N          timed runs per case (default 5 encoder, 20 decoder; 1 with --quick)
  --models LIST     variants: comma-separated models (default ${DEFAULT_MODELS.join(",")})
  --tune            variants: tune in this run where the tune cache has no table for this
                    adapter (not saved; \`deno task tune\` saves one)
  --page-model M    page: the model the server loads (default sam-tiny)
  --budget SECONDS  per-case budget: cases estimated beyond it are skipped (default 900)
  --no-peer         ours only
  --out DIR         where the results go (default bench/results/)
  --tag TAG         name the files <adapter>-TAG.{json,md} (a run of some sections)
  -h, --help        this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, bad value).`;

/** The options; a UsageError (exit 2) for a bad argument. */
export function parseArgs(args: readonly string[]): ReportOptions {
  const { values, positionals } = parseFlags(args, {
    quick: { type: "boolean" },
    only: { type: "string" },
    runs: { type: "string" },
    budget: { type: "string" },
    "no-peer": { type: "boolean" },
    out: { type: "string" },
    models: { type: "string" },
    tune: { type: "boolean" },
    "page-model": { type: "string" },
    tag: { type: "string" },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const quick = values.quick ?? false;
  const value = (flag: "--only" | "--runs" | "--budget" | "--out"): string | undefined =>
    values[flag.slice(2) as "only" | "runs" | "budget" | "out"];
  const onlyArg = value("--only");
  const only = new Set<Section>();
  for (const g of onlyArg ? list(onlyArg) : SECTIONS) {
    if (!SECTIONS.includes(g as Section)) {
      throw new UsageError(`--only takes ${SECTIONS.join(",")}; got ${g}`);
    }
    only.add(g as Section);
  }
  if (onlyArg !== undefined && only.size === 0) throw new UsageError("--only needs a value");
  const models = values.models === undefined ? [...DEFAULT_MODELS] : list(values.models);
  if (models.length === 0) throw new UsageError("--models needs a value");
  const tag = values.tag ?? null;
  if (tag !== null && !/^[a-z0-9][a-z0-9-]{0,40}$/.test(tag)) {
    throw new UsageError(`--tag takes lower-case letters, digits and '-', got '${tag}'`);
  }
  const pageModel = values["page-model"] ?? "sam-tiny";
  if (pageModel === "") throw new UsageError("--page-model needs a value");
  const runsArg = value("--runs");
  const runs = runsArg === undefined ? undefined : Number(runsArg);
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) {
    throw new UsageError(`--runs must be a positive integer, got ${runsArg}`);
  }
  const budgetArg = value("--budget");
  const budgetS = budgetArg === undefined ? (quick ? 120 : 900) : Number(budgetArg);
  if (!(budgetS > 0)) {
    throw new UsageError(`--budget must be positive seconds, got ${budgetArg}`);
  }
  return {
    quick,
    only,
    encoderRuns: runs ?? (quick ? 1 : 5),
    decoderRuns: runs ?? (quick ? 1 : 20),
    warmup: 1,
    budgetMs: budgetS * 1000,
    peer: !values["no-peer"],
    outDir: value("--out") ?? new URL("../results/", import.meta.url).pathname,
    tag,
    models,
    tune: values.tune ?? false,
    tuneMinMs: quick ? 20 : 200,
    pageModel,
    pageClicks: runs ?? (quick ? 2 : 5),
  };
}

function list(arg: string): string[] {
  return arg.split(",").map((s) => s.trim()).filter(Boolean);
}
