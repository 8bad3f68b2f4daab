/**
 * Prometheus metrics of one server process, rendered as the text exposition format
 * (version 0.0.4) for GET /metrics:
 *
 *   wgsam_http_requests_total{route,method,status}   requests answered
 *   wgsam_http_request_duration_seconds{route}       histogram, whole request
 *   wgsam_encode_seconds                             histogram, image encoder runs
 *   wgsam_decode_seconds                             histogram, decoder calls of segment/detect
 *   wgsam_encoder_runs_total                         encoder runs (= encode histogram count)
 *   wgsam_embedding_lookups_total{result}            local_hit, shared_hit (Redis) or miss
 *   wgsam_queue_depth / wgsam_queue_running          GPU work queue, now
 *   wgsam_shared_store_*                             the Redis store's counters, when on
 *
 * Route labels are patterns (`/api/images/:id/segment`), never raw paths, so that the number
 * of series stays bounded whatever clients send.
 */
import type { EmbeddingEvent } from "../predictor.ts";
import type { Engine } from "./engine.ts";

/** Bucket bounds in seconds: 1 ms to 2 minutes, for software and real GPUs alike. */
export const LATENCY_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
];

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (seconds <= this.bounds[i]) this.counts[i]++;
    }
  }
  render(name: string, labels: string, out: string[]): void {
    const sep = labels ? "," : "";
    this.bounds.forEach((b, i) => {
      out.push(`${name}_bucket{${labels}${sep}le="${b}"} ${this.counts[i]}`);
    });
    out.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${this.count}`);
    const braces = labels ? `{${labels}}` : "";
    out.push(`${name}_sum${braces} ${this.sum}`);
    out.push(`${name}_count${braces} ${this.count}`);
  }
}

/** A label value escaped as the exposition format wants. */
function label(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

const IMAGE_ROUTE = /^\/api\/images\/[^/]+(\/(segment|everything|embedding|detect))?\/?$/;
const KNOWN_ROUTES = new Set([
  "/",
  "/index.html",
  "/app.js",
  "/style.css",
  "/api/info",
  "/api/images",
  "/healthz",
  "/metrics",
  // CVAT (src/server/cvat.ts) and Label Studio (src/server/label_studio.ts).
  "/api/functions",
  "/api/function_invocations",
  "/ls",
  "/ls/health",
  "/ls/setup",
  "/ls/predict",
  "/ls/webhook",
  "/ls/metrics",
]);

/** The route pattern of a path: ids become `:id`, anything unknown is `other`. */
export function routeOf(path: string): string {
  if (KNOWN_ROUTES.has(path)) return path;
  const m = IMAGE_ROUTE.exec(path);
  if (m) return `/api/images/:id${m[2] ? `/${m[2]}` : ""}`;
  if (/^\/api\/functions\/[^/]+\/?$/.test(path)) return "/api/functions/:name";
  return "other";
}

/** A value read when /metrics is scraped (queue depth, store counters). */
export type Gauge = { name: string; help: string; type: "gauge" | "counter"; read: () => number };

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();
  readonly encode = new Histogram(LATENCY_BUCKETS);
  readonly decode = new Histogram(LATENCY_BUCKETS);
  private readonly lookups = { local_hit: 0, shared_hit: 0, miss: 0 };
  private readonly gauges: Gauge[] = [];

  /** Counts one answered request and its duration. */
  request(method: string, path: string, status: number, seconds: number): void {
    const route = routeOf(path);
    const key = `route="${label(route)}",method="${label(method)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.durations.get(route);
    if (!h) this.durations.set(route, h = new Histogram(LATENCY_BUCKETS));
    h.observe(seconds);
  }

  /** The predictor's report of where an embedding came from (SamPredictor's onEmbedding). */
  embedding(event: EmbeddingEvent): void {
    if (event.kind === "local-hit") this.lookups.local_hit++;
    else if (event.kind === "shared-hit") this.lookups.shared_hit++;
    else {
      this.lookups.miss++;
      this.encode.observe(event.ms / 1000);
    }
  }

  /** Encoder runs so far. */
  get encoderRuns(): number {
    return this.encode.count;
  }

  addGauge(gauge: Gauge): void {
    this.gauges.push(gauge);
  }

  render(): string {
    const out: string[] = [];
    out.push("# HELP wgsam_http_requests_total HTTP requests answered, by route and status.");
    out.push("# TYPE wgsam_http_requests_total counter");
    for (const [key, n] of this.requests) out.push(`wgsam_http_requests_total{${key}} ${n}`);
    out.push("# HELP wgsam_http_request_duration_seconds Time to answer a request.");
    out.push("# TYPE wgsam_http_request_duration_seconds histogram");
    for (const [route, h] of this.durations) {
      h.render("wgsam_http_request_duration_seconds", `route="${label(route)}"`, out);
    }
    out.push("# HELP wgsam_encode_seconds Image encoder runs.");
    out.push("# TYPE wgsam_encode_seconds histogram");
    this.encode.render("wgsam_encode_seconds", "", out);
    out.push("# HELP wgsam_decode_seconds Prompt decoder calls (segment and detect requests).");
    out.push("# TYPE wgsam_decode_seconds histogram");
    this.decode.render("wgsam_decode_seconds", "", out);
    out.push("# HELP wgsam_encoder_runs_total Images encoded by this process.");
    out.push("# TYPE wgsam_encoder_runs_total counter");
    out.push(`wgsam_encoder_runs_total ${this.encode.count}`);
    out.push(
      "# HELP wgsam_embedding_lookups_total Embedding lookups: local cache hit, shared " +
        "(Redis) hit, or miss (the encoder runs).",
    );
    out.push("# TYPE wgsam_embedding_lookups_total counter");
    for (const [result, n] of Object.entries(this.lookups)) {
      out.push(`wgsam_embedding_lookups_total{result="${result}"} ${n}`);
    }
    for (const g of this.gauges) {
      out.push(`# HELP ${g.name} ${g.help}`);
      out.push(`# TYPE ${g.name} ${g.type}`);
      out.push(`${g.name} ${g.read()}`);
    }
    return out.join("\n") + "\n";
  }
}

/** The engine with its decoder calls timed into `metrics.decode`. */
export function timedEngine<E extends Engine>(engine: E, metrics: Metrics): E {
  const timed = async <T>(work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      metrics.decode.observe((performance.now() - t0) / 1000);
    }
  };
  const predict: Engine["predict"] = (prompt, o) => timed(() => engine.predict(prompt, o));
  const predictBatch: Engine["predictBatch"] = (prompts, o) =>
    timed(() => engine.predictBatch(prompts, o));
  // A proxy rather than a copy: the engine's other members stay its own (getters, state).
  return new Proxy(engine, {
    get(target, prop) {
      if (prop === "predict") return predict;
      if (prop === "predictBatch") return predictBatch;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
