/**
 * `deno task worker --redis URL`: takes batch jobs (`deno task batch submit`) from Redis and
 * runs them, as many workers as you like on as many hosts. Each writes `<output>/<stem>.json`
 * and, for the last image of a batch, the merged `<output>/annotations.json`; the paths are the
 * ones given to `batch submit`, so every worker host must see them (a shared folder).
 *
 * SIGINT / SIGTERM: finish the current job, then exit. A SIGKILLed worker's job goes to another
 * worker after --visibility-s.
 */
import { runWorker } from "../batch/worker.ts";
import { GPU_FLAGS, numberFlag, parseFlags, runCli, UsageError } from "./args.ts";
import { checkRedisUrl, openRedis, redactUrl } from "../server/redis.ts";

export const USAGE = `usage: deno task worker --redis URL [options]
  --redis URL          redis://host:port (or WGSAM_REDIS)
  --name NAME          this worker's name in the queue (default: $HOSTNAME-pid-random)
  --visibility-s S     a job whose worker is silent this long goes to another worker (30)
  --max-attempts N     deliveries of one job before it is recorded failed (3)
  --until-empty        exit once no job is left, instead of waiting for more
  --precision f32|f16  storage of weights and GEMM activations (f32; or $WGSAM_PRECISION)`;

export interface WorkerArgs {
  redis: string;
  name: string;
  visibilityS: number;
  maxAttempts: number;
  untilEmpty: boolean;
  help: boolean;
}

/**
 * $HOSTNAME-pid-random: unique across hosts and containers (where every pid may be 1). Not
 * Deno.hostname(): it needs --allow-sys, which the task does not grant.
 */
function defaultWorkerName(env: (name: string) => string | undefined): string {
  const host = (env("HOSTNAME") ?? "").replace(/[^A-Za-z0-9._-]/g, "") || "worker";
  return `${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 4)}`;
}

export function parseWorkerArgs(
  argv: readonly string[],
  env: (name: string) => string | undefined = () => undefined,
): WorkerArgs {
  const { values, positionals } = parseFlags(argv, {
    redis: { type: "string" },
    name: { type: "string" },
    "visibility-s": { type: "string", default: "30" },
    "max-attempts": { type: "string", default: "3" },
    "until-empty": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
    ...GPU_FLAGS,
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const args: WorkerArgs = {
    redis: values.redis ?? env("WGSAM_REDIS") ?? "",
    name: values.name ?? defaultWorkerName(env),
    visibilityS: numberFlag("visibility-s", values["visibility-s"]!, { min: 0.001, max: 86400 }),
    maxAttempts: numberFlag("max-attempts", values["max-attempts"]!, { min: 1, integer: true }),
    untilEmpty: values["until-empty"]!,
    help: values.help!,
  };
  if (args.help) return args;
  if (!args.redis) throw new UsageError("--redis URL is required (or WGSAM_REDIS)");
  try {
    checkRedisUrl(args.redis);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(args.name)) {
    throw new UsageError("--name: letters, digits and . _ : - only (at most 100)");
  }
  return args;
}

export async function main(argv: readonly string[]): Promise<number> {
  const args = parseWorkerArgs(argv, (n) => Deno.env.get(n));
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const { redis, ready } = openRedis(args.redis, {
    commandTimeoutMs: 10_000,
    whenDown: "jobs wait in Redis; retrying in the background",
  });
  if (!await ready) {
    redis.disconnect();
    throw new Error(`cannot reach ${redactUrl(args.redis)}`);
  }
  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) return;
    console.log("stopping after the current job");
    stop.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  console.log(`worker ${args.name} on ${redactUrl(args.redis)}`);
  try {
    await runWorker(redis, {
      consumer: args.name,
      visibilityMs: Math.round(args.visibilityS * 1000),
      maxAttempts: args.maxAttempts,
      untilEmpty: args.untilEmpty,
      log: (line) => console.log(line),
      signal: stop.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    redis.disconnect();
  }
  console.log(stop.signal.aborted ? "worker: stopped" : "worker: no job left");
  return 0;
}

if (import.meta.main) await runCli("worker", () => main(Deno.args));
