/**
 * The command line of `deno task bench:report`: flags, defaults, the usage text. A bad
 * argument is a UsageError (exit 2).
 */
import { parseFlags, UsageError } from "../../src/cli/args.ts";
import type { Group } from "./measure.ts";

export interface ReportOptions {
  quick: boolean;
  only: Set<Group>;
  /** Timed runs per case (encoders, decoder). */
  encoderRuns: number;
  decoderRuns: number;
  warmup: number;
  /** Per-case budget in ms: predictable cases estimated beyond it are skipped. */
  budgetMs: number;
  peer: boolean;
  outDir: string;
}

export const USAGE = `Usage: deno task bench:report [options]

Measures wgsam against onnxruntime-web (wasm and its WebGPU provider) on the same inputs and
writes bench/results/<adapter>.{json,md} (see bench/README.md).

  --quick           one run per case, smaller budget (120 s a case)
  --only GROUPS     comma-separated: encoder, decoder, amg (default: all)
  --runs N          timed runs per case (default 5 encoder, 20 decoder; 1 with --quick)
  --budget SECONDS  per-case budget: cases estimated beyond it are skipped (default 900)
  --no-peer         ours only
  --out DIR         where the results go (default bench/results/)
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
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const quick = values.quick ?? false;
  const value = (flag: "--only" | "--runs" | "--budget" | "--out"): string | undefined =>
    values[flag.slice(2) as "only" | "runs" | "budget" | "out"];
  const groups: Group[] = ["encoder", "decoder", "amg"];
  const onlyArg = value("--only");
  const only = new Set<Group>();
  for (const g of onlyArg ? onlyArg.split(",").map((s) => s.trim()).filter(Boolean) : groups) {
    if (!groups.includes(g as Group)) {
      throw new UsageError(`--only takes ${groups.join(",")}; got ${g}`);
    }
    only.add(g as Group);
  }
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
  };
}
