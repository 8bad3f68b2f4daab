/**
 * `deno task serve`: wgsam's HTTP server and web page. Configuration by flags and environment
 * (see src/server/config.ts or `--help`); the application itself is `createApp` in
 * src/server/app.ts.
 */
import "./gpu/gpu_flag.ts"; // --gpu auto|deno|dawn, taken out of Deno.args first
import { createApp, meaninglessWarning } from "./server/app.ts";
import { findDefaultModel, parseConfig, USAGE } from "./server/config.ts";
import { loadServerDetector, type ServerDetector } from "./server/detector.ts";
import { loadSamEngine } from "./server/sam_engine.ts";
import { modelIdentity, SharedStore } from "./server/embedding_store.ts";
import { serveGuarded } from "./server/listener.ts";
import { Metrics, timedEngine } from "./server/metrics.ts";
import { withOps } from "./server/ops.ts";
import { checkRedisUrl, openRedis, redactUrl, type Redis } from "./server/redis.ts";
import { loadWorkerEngine } from "./server/worker_engine.ts";
import { tuneAtStart } from "./server/tune_start.ts";
import { resolveModel, weightsDirFrom } from "./weights/registry.ts";
import { type AllowedHost, parseAllowHosts } from "./server/ls_image.ts";
import { videoTrackerFactory } from "./video/tracker.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(Deno.args, (name) => Deno.env.get(name));
  } catch (e) {
    // One wording with every other wgsam command (src/cli/args.ts runCli).
    console.error(
      `serve: error: ${(e as Error).message}\nRun 'deno task serve --help' for usage.`,
    );
    return 2;
  }
  if (config.help) {
    console.log(USAGE);
    return 0;
  }
  let lsAllowHosts: AllowedHost[] = [];
  try {
    lsAllowHosts = parseAllowHosts(config.lsAllowHosts ?? "");
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  if (config.redis) {
    try {
      checkRedisUrl(config.redis);
    } catch (e) {
      console.error(`error: ${(e as Error).message}`);
      return 2;
    }
  }
  const badOrigin = config.allowOrigin.find((o) => o !== "*" && !/^https?:\/\/[^/\s]+$/i.test(o));
  if (badOrigin !== undefined) {
    console.error(
      `error: --allow-origin "${badOrigin}" is not an origin (scheme://host[:port], or *)`,
    );
    return 2;
  }

  // The detector first: a bad file fails at once, before the slower SAM model loads.
  let detector: ServerDetector | null = null;
  if (config.detector) {
    try {
      detector = await loadServerDetector(config.detector);
    } catch (e) {
      console.error(`error: --detector: ${(e as Error).message}`);
      return 2;
    }
    const d = detector.info();
    console.log(
      `detector: ${d.path} (${d.layout}, input ${d.input_size.join("x")}, ` +
        `${d.classes.length} classes, on ${d.execution_provider})`,
    );
  }

  let model = config.model;
  if (!model) {
    // The folder `deno task weights` installs into: $WGSAM_WEIGHTS_DIR, else weights/.
    const weightsDir = weightsDirFrom();
    model = findDefaultModel(weightsDir);
    if (model) {
      console.log(`model: ${model} (found in ${weightsDir}/)`);
    } else {
      console.warn(
        `No model configured (--model / WGSAM_MODEL) and none in ${weightsDir}/.\n` +
          "  Get one with:  deno task weights vit_b\n" +
          "  Falling back to the bundled sam-tiny test model.",
      );
      model = "sam-tiny";
    }
  }

  if (config.tune) {
    try {
      await tuneAtStart(model, {
        minMs: config.tuneMinMs,
        precision: config.precision,
        log: (line) => console.log(line),
      });
    } catch (e) {
      // A model that does not load fails below with its own message (exit 2).
      console.error(`tune: failed: ${(e as Error).message}; serving with the cache as it is`);
    }
  }

  const cacheBytes = Math.max(1, Math.round(config.cacheMb * 1024 * 1024));
  const precision = config.precision;
  const t0 = performance.now();
  const metrics = new Metrics();
  let redis: Redis | null = null;
  let shared: SharedStore | null = null;
  let samEngine;
  try {
    if (config.redis) {
      // Embeddings are keyed by the checkpoint's bytes, so two checkpoints never mix.
      const identity = await modelIdentity(await resolveModel(model));
      const conn = openRedis(config.redis, {
        whenDown: "serving from this host's own cache, retrying in the background",
      });
      redis = conn.redis;
      shared = new SharedStore(redis, {
        model: identity,
        ttlS: config.redisTtlS,
        maxBytes: Math.round(config.redisMb * 1024 * 1024),
      });
      await conn.ready; // only for the log's order: an outage is logged, not fatal
    }
    const onEmbedding = (event: { kind: "local-hit" | "shared-hit" | "encode"; ms: number }) =>
      metrics.embedding(event);
    samEngine = shared
      // The shared store's connection lives on this thread, and so does the model with it.
      ? await loadSamEngine(model, { cacheBytes, shared, onEmbedding, precision })
      // On its own thread: GPU waits and "segment everything" never hold the event loop.
      : await loadWorkerEngine(model, { cacheBytes, onEmbedding, precision });
  } catch (e) {
    // A missing, corrupt or foreign checkpoint: its message says what to do, no stack trace.
    console.error(`error: --model ${model}: ${(e as Error).message}`);
    redis?.disconnect();
    await detector?.dispose();
    return 2;
  }
  const engine = timedEngine(samEngine, metrics);
  console.log(
    `loaded ${engine.info.model} in ${
      Math.round(performance.now() - t0)
    } ms on ${engine.info.adapter}${engine.info.provider ? ` (${engine.info.provider})` : ""}${
      engine.info.precision === "f16" ? ", precision f16" : ""
    }`,
  );
  if (engine.info.meaningless) console.warn(`WARNING: ${meaninglessWarning(engine.info.model)}`);

  const app = createApp({
    engine,
    detector,
    limits: {
      maxQueue: config.maxQueue,
      // At least 1 ms and 1 byte: a tiny positive flag never rounds to "refuse everything".
      requestTimeoutMs: Math.max(1, Math.round(config.timeoutS * 1000)),
      maxUploadBytes: Math.max(1, Math.round(config.maxUploadMb * 1024 * 1024)),
      maxPixels: config.maxPixels,
      maxMaskPixels: config.maxMaskPixels,
      imageCacheBytes: cacheBytes,
    },
    sharedImages: shared,
    // The name the server was bound to is its own; IP addresses and localhost always are.
    access: { allowHosts: [config.host, ...config.allowHost], allowOrigins: config.allowOrigin },
    labelStudio: { allowHosts: lsAllowHosts },
    // SAM 2.1: /api/videos sessions, on this thread (each with its own tracker).
    video: engine.info.family === "sam2" ? videoTrackerFactory(model) : null,
  });
  if (shared) {
    const store = shared;
    const counters = ["hits", "misses", "writes", "errors", "evicted"] as const;
    for (const name of counters) {
      metrics.addGauge({
        name: `wgsam_shared_store_${name}_total`,
        help: `Shared (Redis) embedding store: ${name}.`,
        type: "counter",
        read: () => store.stats()[name],
      });
    }
    metrics.addGauge({
      name: "wgsam_shared_store_connected",
      help: "1 while Redis is reachable.",
      type: "gauge",
      read: () => store.stats().connected ? 1 : 0,
    });
  }
  const handler = withOps({
    app,
    metrics,
    model: engine.info.model,
    adapter: engine.info.adapter,
    health: () => samEngine.health(),
    redis: shared
      ? () => ({ url: redactUrl(config.redis!), connected: shared.stats().connected })
      : undefined,
  });

  let server: Awaited<ReturnType<typeof serveGuarded>>;
  try {
    server = await serveGuarded({
      hostname: config.host,
      port: config.port,
      limits: {
        maxConnections: config.maxConnections,
        headerTimeoutMs: Math.max(1, Math.round(config.headerTimeoutS * 1000)),
        idleTimeoutMs: Math.max(1, Math.round(config.idleTimeoutS * 1000)),
      },
      onError: (e) => {
        // createApp answers every error itself; this is a last resort that keeps serving.
        console.error(`ERROR (unhandled): ${(e as Error)?.stack ?? e}`);
        return new Response(JSON.stringify({ error: "internal error" }), {
          status: 500,
          headers: { "content-type": "application/json" },
        });
      },
    }, handler);
  } catch (e) {
    app.close();
    // Port taken, or no permission to bind: say which address, without a stack trace.
    const reason = e instanceof Deno.errors.AddrInUse
      ? "the address is already in use (another server on that port? try --port)"
      : (e as Error).message;
    console.error(`error: cannot listen on ${config.host}:${config.port}: ${reason}`);
    engine.dispose();
    redis?.disconnect();
    await detector?.dispose();
    return 2;
  }
  const { hostname, port } = server.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  console.log(`wgsam listening on http://${shown}:${port}/`);

  // Graceful stop: no new connections, new requests on open ones get a 503, and the accepted
  // ones (running or queued for the GPU) have --drain-s seconds to finish.
  let stopping = false;
  let exitCode = 0;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log(
      `shutting down: finishing ${handler.inFlight} accepted requests within ${config.drainS} s`,
    );
    handler.drain();
    const deadline = setTimeout(() => {
      console.error(
        `ERROR shutdown: ${handler.inFlight} requests still unfinished after ${config.drainS} s; ` +
          "exiting without them",
      );
      exitCode = 1;
      engine.dispose();
      redis?.disconnect();
      Deno.exit(exitCode);
    }, config.drainS * 1000);
    server.shutdown().finally(() => clearTimeout(deadline));
  };
  try {
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch {
    // Signals are not available on every platform.
  }
  // Never rejects: accept errors (EMFILE) are logged and the listener keeps going.
  await server.finished;
  if (stopping) console.log("stopped: every accepted request answered");
  app.close();
  engine.dispose();
  redis?.disconnect();
  await detector?.dispose();
  return exitCode;
}

if (import.meta.main) Deno.exit(await main());
