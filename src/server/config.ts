/**
 * Server configuration from command-line flags and environment variables; flags win.
 *
 *   --host / WGSAM_HOST        interface to listen on (127.0.0.1)
 *   --port / WGSAM_PORT        port (8787; 0 picks a free one)
 *   --model / WGSAM_MODEL      checkpoint path or registry name (vit_b, vit_l, vit_h, sam-tiny,
 *                              sam2.1_hiera_tiny ... sam2-tiny);
 *                              default: the first *.safetensors, else *.pth, of the folder
 *                              `deno task weights` installs into ($WGSAM_WEIGHTS_DIR, else
 *                              weights/), else the bundled sam-tiny test model
 *   --detector / WGSAM_DETECTOR  an ONNX object detector (YOLO-NAS / YOLOv8 / YOLO11) for
 *                              POST /api/images/:id/detect; none by default
 *   --cache-mb / WGSAM_CACHE_MB  MiB for the embedding cache and, again, for decoded images (512)
 *   --timeout-s / WGSAM_TIMEOUT_S  time limit of one GPU request, waiting included (300); an
 *                              upload's encode is bounded only while it waits for the GPU
 *   --max-queue / WGSAM_MAX_QUEUE  requests that may wait for the GPU (16)
 *   --max-upload-mb / WGSAM_MAX_UPLOAD_MB  largest upload (32)
 *   --max-pixels / WGSAM_MAX_PIXELS  largest image, width * height (16777216)
 *   --max-mask-pixels / WGSAM_MAX_MASK_PIXELS  full-size mask pixels one segment request may
 *                              ask for: prompts * masks per prompt * width * height (268435456)
 *   --redis / WGSAM_REDIS      redis://host:port shared by several servers: embeddings and
 *                              uploads, so an image id is valid on every host (none)
 *   --redis-ttl-s / WGSAM_REDIS_TTL_S  lifetime of an unused shared entry (86400)
 *   --redis-mb / WGSAM_REDIS_MB  cap on what the servers store in Redis together (4096)
 *   --drain-s / WGSAM_DRAIN_S  on SIGTERM, how long accepted requests may take to finish (30)
 *   --allow-origin / WGSAM_ALLOW_ORIGIN  other origins whose pages may call the API (CORS);
 *                              repeat or comma-separate; "*" for any (none)
 *   --allow-host / WGSAM_ALLOW_HOST  host names to answer besides IP addresses, localhost and
 *                              --host (a DNS rebinding guard); repeat or comma-separate (none)
 *   --max-connections / WGSAM_MAX_CONNECTIONS  open connections (256)
 *   --header-timeout-s / WGSAM_HEADER_TIMEOUT_S  time for a request head (20)
 *   --idle-timeout-s / WGSAM_IDLE_TIMEOUT_S  keep-alive wait for the next request (10)
 *   --ls-allow-host / WGSAM_LS_ALLOW_HOSTS  hosts (host or host:port, comma separated) that
 *                              Label Studio task images may come from at private addresses
 *   --tune                     time the kernel variants at first start (shapes missing from
 *                              the tune cache), then serve
 *   --tune-min-ms / WGSAM_TUNE_MIN_MS  time budget per variant and shape for --tune (200)
 */
import { parseFlags, UsageError } from "../cli/args.ts";
import { DEFAULT_LIMITS } from "./limits.ts";
import { DEFAULT_CONNECTION_LIMITS } from "./listener.ts";
import { parsePrecision, type Precision } from "../precision.ts";

export interface ServerConfig {
  host: string;
  port: number;
  /** As given; null when neither flag nor env names one. */
  model: string | null;
  /** The detector's .onnx path; null: no detect endpoint. */
  detector: string | null;
  cacheMb: number;
  timeoutS: number;
  maxQueue: number;
  maxUploadMb: number;
  maxPixels: number;
  maxMaskPixels: number;
  /** A redis:// URL; null: nothing shared. */
  redis: string | null;
  redisTtlS: number;
  redisMb: number;
  drainS: number;
  allowOrigin: string[];
  allowHost: string[];
  maxConnections: number;
  headerTimeoutS: number;
  idleTimeoutS: number;
  /** --ls-allow-host as given (comma-separated host[:port]); null: none. */
  lsAllowHosts: string | null;
  /** --precision / WGSAM_PRECISION: "f32" or "f16" (src/precision.ts). */
  precision: Precision;
  /** --tune: tune the kernels for this adapter and model before serving (src/server/tune_start.ts). */
  tune: boolean;
  tuneMinMs: number;
  help: boolean;
}

export const USAGE = `Usage: deno task serve [options]

wgsam server: Segment Anything on WebGPU over HTTP (API and click-to-segment page).

Options: [--host H] [--port P] [--model PATH|NAME] [--detector PATH.onnx]
                       [--cache-mb N] [--timeout-s S] [--max-queue N] [--max-upload-mb N]
                       [--max-pixels N] [--max-mask-pixels N]
                       [--redis URL] [--redis-ttl-s S] [--redis-mb N] [--drain-s S]
                       [--allow-origin ORIGIN]... [--allow-host NAME]... [--max-connections N]
                       [--header-timeout-s S] [--idle-timeout-s S]
                       [--ls-allow-host HOST[:PORT],...] [--gpu auto|deno|dawn]
                       [--precision f32|f16]
                       [--tune] [--tune-min-ms N]
  -h, --help           this text

Each flag can also be set by the environment: WGSAM_HOST, WGSAM_PORT, WGSAM_MODEL,
WGSAM_DETECTOR, WGSAM_CACHE_MB, WGSAM_TIMEOUT_S, WGSAM_MAX_QUEUE, WGSAM_MAX_UPLOAD_MB,
WGSAM_MAX_PIXELS, WGSAM_MAX_MASK_PIXELS, WGSAM_REDIS, WGSAM_REDIS_TTL_S, WGSAM_REDIS_MB,
WGSAM_DRAIN_S, WGSAM_ALLOW_ORIGIN, WGSAM_ALLOW_HOST, WGSAM_MAX_CONNECTIONS,
WGSAM_HEADER_TIMEOUT_S, WGSAM_IDLE_TIMEOUT_S, WGSAM_LS_ALLOW_HOSTS, WGSAM_PRECISION,
WGSAM_TUNE_MIN_MS.
--precision f16 stores the model's weights and GEMM-to-GEMM activations as float16 (half the
bytes; needs the adapter's shader-f16; SAM 1 family only); /api/info reports it.
--tune times the GEMM and attention variants at start for the shapes of the model that the
tune cache (tune-cache.json in the weights folder) lacks for this adapter, as \`deno task tune\`
does, writes the winners there, then serves; later starts find them and only check.
--ls-allow-host names hosts (comma separated) that Label Studio task images may be fetched from
at loopback or private addresses, besides LABEL_STUDIO_URL's host.
--redis redis://host:port shares embeddings and uploads between servers (see README, "Many
hosts"). On SIGTERM the server stops accepting and gives accepted requests --drain-s seconds.
--max-mask-pixels bounds one segment request: prompts x masks per prompt x width x height.
--timeout-s bounds waiting for the GPU and each prompt request; an image's encoding, once
started, always finishes (it is cached, so later prompts on it are fast); an upload whose encode
takes over 20 s answers 202 {status: "encoding"}, and GET /api/images/ID says when it is ready.
Browsers: pages of other sites may call the API only when named by --allow-origin
(e.g. http://localhost:8080); the server answers only to IP addresses, localhost, --host and
--allow-host names (a DNS rebinding guard). Lists repeat the flag or separate by commas.
Without a model, the first weights/*.safetensors or weights/*.pth is used (WGSAM_WEIGHTS_DIR
names another folder, as for \`deno task weights\`), else the bundled
sam-tiny test model (random weights: meaningless masks). With --detector (an ONNX YOLO-NAS,
YOLOv8 or YOLO11 detector), POST /api/images/:id/detect segments what it detects.

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, bad value, a model
that does not load). On SIGTERM: 0 once accepted requests finished within --drain-s, else 1.`;

interface FlagSpec {
  env: string;
  key: keyof ServerConfig;
  kind: "string" | "int" | "num" | "list" | "precision";
  /** Must be above 0: 0 would make every request fail (a 504 at once, a 413, a 400...). */
  positive?: boolean;
  /** Largest value allowed. */
  max?: number;
}

const FLAGS: Record<string, FlagSpec> = {
  host: { env: "WGSAM_HOST", key: "host", kind: "string" },
  port: { env: "WGSAM_PORT", key: "port", kind: "int", max: 65535 },
  model: { env: "WGSAM_MODEL", key: "model", kind: "string" },
  detector: { env: "WGSAM_DETECTOR", key: "detector", kind: "string" },
  "cache-mb": { env: "WGSAM_CACHE_MB", key: "cacheMb", kind: "num", positive: true },
  // setTimeout fires at once past 2^31 - 1 ms (about 24.8 days).
  "timeout-s": {
    env: "WGSAM_TIMEOUT_S",
    key: "timeoutS",
    kind: "num",
    positive: true,
    max: 2_147_483,
  },
  "max-queue": { env: "WGSAM_MAX_QUEUE", key: "maxQueue", kind: "int" },
  "max-upload-mb": {
    env: "WGSAM_MAX_UPLOAD_MB",
    key: "maxUploadMb",
    kind: "num",
    positive: true,
  },
  "max-pixels": { env: "WGSAM_MAX_PIXELS", key: "maxPixels", kind: "int", positive: true },
  "max-mask-pixels": {
    env: "WGSAM_MAX_MASK_PIXELS",
    key: "maxMaskPixels",
    kind: "int",
    positive: true,
  },
  redis: { env: "WGSAM_REDIS", key: "redis", kind: "string" },
  "redis-ttl-s": {
    env: "WGSAM_REDIS_TTL_S",
    key: "redisTtlS",
    kind: "num",
    positive: true,
    max: 2_147_483,
  },
  "redis-mb": { env: "WGSAM_REDIS_MB", key: "redisMb", kind: "num", positive: true },
  "drain-s": { env: "WGSAM_DRAIN_S", key: "drainS", kind: "num", max: 2_147_483 },
  "allow-origin": { env: "WGSAM_ALLOW_ORIGIN", key: "allowOrigin", kind: "list" },
  "allow-host": { env: "WGSAM_ALLOW_HOST", key: "allowHost", kind: "list" },
  "max-connections": {
    env: "WGSAM_MAX_CONNECTIONS",
    key: "maxConnections",
    kind: "int",
    positive: true,
  },
  "header-timeout-s": {
    env: "WGSAM_HEADER_TIMEOUT_S",
    key: "headerTimeoutS",
    kind: "num",
    positive: true,
    max: 2_147_483,
  },
  "idle-timeout-s": {
    env: "WGSAM_IDLE_TIMEOUT_S",
    key: "idleTimeoutS",
    kind: "num",
    positive: true,
    max: 2_147_483,
  },
  "ls-allow-host": { env: "WGSAM_LS_ALLOW_HOSTS", key: "lsAllowHosts", kind: "string" },
  precision: { env: "WGSAM_PRECISION", key: "precision", kind: "precision" },
  "tune-min-ms": {
    env: "WGSAM_TUNE_MIN_MS",
    key: "tuneMinMs",
    kind: "num",
    positive: true,
    max: 600_000,
  },
};

export const DEFAULT_CONFIG: Readonly<ServerConfig> = Object.freeze({
  host: "127.0.0.1",
  port: 8787,
  model: null,
  detector: null,
  cacheMb: 512,
  timeoutS: 300,
  maxQueue: 16,
  maxUploadMb: 32,
  maxPixels: 4096 * 4096,
  maxMaskPixels: DEFAULT_LIMITS.maxMaskPixels,
  redis: null,
  redisTtlS: 86400,
  redisMb: 4096,
  drainS: 30,
  allowOrigin: [],
  allowHost: [],
  maxConnections: DEFAULT_CONNECTION_LIMITS.maxConnections,
  headerTimeoutS: DEFAULT_CONNECTION_LIMITS.headerTimeoutMs / 1000,
  idleTimeoutS: DEFAULT_CONNECTION_LIMITS.idleTimeoutMs / 1000,
  lsAllowHosts: null,
  precision: "f32",
  tune: false,
  tuneMinMs: 200,
  help: false,
});

function parseValue(flag: string, spec: FlagSpec, text: string): string | number | string[] {
  const { kind } = spec;
  if (kind === "list") {
    const items = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (items.length === 0) throw new Error(`--${flag} needs a value`);
    return items;
  }
  if (kind === "string") {
    if (text === "") throw new Error(`--${flag} needs a value`);
    return text;
  }
  if (kind === "precision") return parsePrecision(text, `--${flag}`);
  const n = Number(text);
  const ok = text.trim() !== "" && Number.isFinite(n) && (spec.positive ? n > 0 : n >= 0) &&
    (kind === "num" || Number.isInteger(n));
  if (!ok) {
    throw new Error(
      `--${flag} must be a ${spec.positive ? "positive" : "non-negative"} ${
        kind === "int" ? "integer" : "number"
      }, got "${text}"`,
    );
  }
  if (spec.max !== undefined && n > spec.max) {
    throw new Error(`--${flag} must be at most ${spec.max}, got ${n}`);
  }
  return n;
}

/**
 * Flags (`--name value` or `--name=value`) over env over defaults; throws on bad input (a
 * UsageError for a bad command line).
 */
export function parseConfig(
  args: readonly string[],
  env: (name: string) => string | undefined,
): ServerConfig {
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const value = env(spec.env);
    if (value !== undefined && value !== "") {
      config[spec.key] = parseValue(flag, spec, value);
    }
  }
  // The shared parser of every wgsam command (src/cli/args.ts): unknown flags, missing values
  // and a repeated single-valued flag are UsageErrors. A list flag given on the command line
  // replaces the environment's list, and repeats to grow it.
  const options = Object.fromEntries(
    Object.entries(FLAGS).map(([flag, spec]) => [
      flag,
      { type: "string" as const, multiple: spec.kind === "list" },
    ]),
  );
  const { values, positionals } = parseFlags(args, {
    ...options,
    help: { type: "boolean", short: "h" },
    tune: { type: "boolean" },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (values.help) config.help = true;
  if (values.tune) config.tune = true;
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const given = (values as Record<string, string | string[] | undefined>)[flag];
    if (given === undefined) continue;
    try {
      config[spec.key] = Array.isArray(given)
        ? given.flatMap((text) => parseValue(flag, spec, text) as string[])
        : parseValue(flag, spec, given);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return config as unknown as ServerConfig;
}

/**
 * The model to load: the configured one, else the first weights/*.safetensors, else the first
 * weights/*.pth (names sorted), else null (the caller falls back to sam-tiny).
 */
export function findDefaultModel(weightsDir: URL | string): string | null {
  let names: string[];
  try {
    names = [...Deno.readDirSync(weightsDir)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch {
    return null;
  }
  const pick = names.find((n) => n.endsWith(".safetensors")) ??
    names.find((n) => n.endsWith(".pth"));
  if (!pick) return null;
  const dir = typeof weightsDir === "string" ? weightsDir : weightsDir.pathname;
  return `${dir.replace(/\/$/, "")}/${pick}`;
}
