/**
 * Operations around the application handler (src/server/app.ts):
 *
 *   GET /healthz   JSON: model loaded, GPU usable, queue depth, Redis; 200 when this process
 *                  can take work, 503 while it drains or once the GPU is lost (a load
 *                  balancer's health check takes it out of rotation)
 *   GET /metrics   Prometheus text (src/server/metrics.ts)
 *
 * and the drain of a graceful stop: after `drain()`, requests still arriving on open
 * connections get a 503 with `connection: close`, while those already accepted finish.
 */
import type { AppHandler } from "./app.ts";
import { errorResponse, jsonResponse } from "./errors.ts";
import type { Metrics } from "./metrics.ts";

export interface Health {
  /** The GPU device is alive (not lost). */
  gpuUsable: boolean;
  /** Why not, when not. */
  gpuError?: string | null;
}

export interface OpsOptions {
  app: AppHandler;
  metrics: Metrics;
  model: string;
  adapter: string;
  health: () => Health;
  /** The shared store's state, when the server runs with --redis. */
  redis?: () => { url: string; connected: boolean };
}

export type OpsHandler = ((req: Request) => Promise<Response>) & {
  /** Starts the drain: new requests are refused from now on. */
  drain(): void;
  /** Requests accepted and not yet answered. */
  readonly inFlight: number;
};

export function withOps(opts: OpsOptions): OpsHandler {
  const { app, metrics } = opts;
  let draining = false;
  let inFlight = 0;
  metrics.addGauge({
    name: "wgsam_queue_depth",
    help: "GPU jobs waiting or running.",
    type: "gauge",
    read: () => {
      const s = app.queue.stats();
      return s.waiting + (s.running ? 1 : 0);
    },
  });
  metrics.addGauge({
    name: "wgsam_queue_running",
    help: "1 while a GPU job runs.",
    type: "gauge",
    read: () => app.queue.stats().running ? 1 : 0,
  });
  metrics.addGauge({
    name: "wgsam_requests_in_flight",
    help: "Requests accepted and not yet answered.",
    type: "gauge",
    read: () => inFlight,
  });
  metrics.addGauge({
    name: "wgsam_draining",
    help: "1 once a graceful stop has begun.",
    type: "gauge",
    read: () => draining ? 1 : 0,
  });

  function healthz(): Response {
    const h = opts.health();
    const q = app.queue.stats();
    const status = draining ? "draining" : h.gpuUsable ? "ok" : "unhealthy";
    return jsonResponse({
      status,
      model: { loaded: true, name: opts.model },
      gpu: { usable: h.gpuUsable, adapter: opts.adapter, error: h.gpuError ?? null },
      queue: { depth: q.waiting + (q.running ? 1 : 0), running: q.running, waiting: q.waiting },
      // Redis down is no reason to leave the rotation: this host serves from its own cache.
      redis: opts.redis ? opts.redis() : null,
      in_flight: inFlight,
    }, status === "ok" ? 200 : 503);
  }

  async function handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const method = req.method === "HEAD" ? "GET" : req.method;
    if (path === "/healthz" || path === "/metrics") {
      if (method !== "GET") {
        return errorResponse(405, "method not allowed; use GET", { allow: "GET" });
      }
      if (path === "/healthz") return healthz();
      return new Response(metrics.render(), {
        headers: {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
        },
      });
    }
    if (draining) {
      return errorResponse(503, "server shutting down; retry on another host", {
        "retry-after": "1",
        connection: "close",
      });
    }
    return await app(req);
  }

  const handler = async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    inFlight++;
    let status = 500;
    try {
      const response = await handle(req);
      status = response.status;
      return response;
    } finally {
      inFlight--;
      let path = "/";
      try {
        path = new URL(req.url).pathname;
      } catch { /* counted as "other" */ }
      metrics.request(req.method, path, status, (performance.now() - t0) / 1000);
    }
  };
  Object.defineProperty(handler, "inFlight", { get: () => inFlight });
  return Object.assign(handler, { drain: () => void (draining = true) }) as OpsHandler;
}
