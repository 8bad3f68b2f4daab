/**
 * Who may talk to the server from a browser: the Host and Origin checks that stop DNS
 * rebinding and cross-site requests (a page on another site posting to a server on
 * localhost), and the CORS headers for the origins that are allowed.
 *
 * - Host: an IP literal is always allowed (it cannot be rebound to another address), and so
 *   are `localhost` and `*.localhost`, the name the server was bound to, and `--allow-host`
 *   names. Any other name (e.g. `rebind.attacker.example`) is a 403.
 * - Origin: when a request carries one, it must be the server's own origin (the scheme and
 *   host the request was sent to) or one of `--allow-origin`. API requests without Origin
 *   that a browser marks cross-site (Sec-Fetch-Site) are refused too.
 * - CORS: allowed foreign origins get Access-Control-Allow-Origin on answers and preflights.
 */
import { HttpError } from "./errors.ts";

export interface AccessPolicy {
  /** Host names allowed besides IP literals and localhost (lower case); "*" allows any. */
  allowHosts: readonly string[];
  /** Origins (scheme://host[:port], lower case) allowed besides the server's own; "*": any. */
  allowOrigins: readonly string[];
}

export const DEFAULT_ACCESS: Readonly<AccessPolicy> = Object.freeze({
  allowHosts: [],
  allowOrigins: [],
});

/** The policy's hosts and origins normalised (lower case, no trailing slash or dot). */
export function accessPolicy(
  opts: { allowHosts?: readonly string[]; allowOrigins?: readonly string[] } = {},
): AccessPolicy {
  return {
    allowHosts: (opts.allowHosts ?? []).map((h) => h.trim().toLowerCase().replace(/\.$/, ""))
      .filter((h) => h !== ""),
    allowOrigins: (opts.allowOrigins ?? []).map((o) => o.trim().toLowerCase().replace(/\/$/, ""))
      .filter((o) => o !== ""),
  };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpLiteral(host: string): boolean {
  if (host.startsWith("[") && host.endsWith("]")) return true; // URL hostnames keep IPv6 brackets
  const m = IPV4.exec(host);
  return m !== null && m.slice(1).every((p) => Number(p) <= 255);
}

export function hostAllowed(hostname: string, policy: AccessPolicy): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (isIpLiteral(host)) return true;
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  return policy.allowHosts.includes("*") || policy.allowHosts.includes(host);
}

/** The origin a browser would send for a page served at `url`. */
function ownOrigin(url: URL): string {
  return url.origin.toLowerCase();
}

export interface AccessDecision {
  /** Headers every answer to this request carries (CORS for an allowed foreign origin). */
  headers: Record<string, string>;
  /** A preflight (OPTIONS with Access-Control-Request-Method) answered without routing. */
  preflight: Response | null;
}

const CORS_METHODS = "GET, POST, DELETE";
const CORS_HEADERS = "content-type";

/**
 * Checks Host and Origin; throws a 403 HttpError for a request that must not be served.
 * `api` marks paths that act or reveal data (everything under /api/).
 */
export function checkAccess(req: Request, url: URL, policy: AccessPolicy, api: boolean) {
  if (!hostAllowed(url.hostname, policy)) {
    throw new HttpError(
      403,
      `Host "${url.hostname.slice(0, 100)}" is not allowed (a DNS rebinding guard): ` +
        "use the address the server listens on, or start it with --allow-host NAME",
    );
  }
  const headers: Record<string, string> = {};
  const origin = req.headers.get("origin");
  if (origin !== null) {
    const o = origin.toLowerCase();
    const own = o === ownOrigin(url);
    const listed = policy.allowOrigins.includes("*") || policy.allowOrigins.includes(o);
    if (!own && !listed) {
      throw new HttpError(
        403,
        `Origin "${origin.slice(0, 100)}" is not allowed: start the server with ` +
          "--allow-origin ORIGIN to let that site's pages use it",
      );
    }
    if (!own) {
      headers["access-control-allow-origin"] = origin;
      headers["vary"] = "Origin";
    }
  } else if (api && req.headers.get("sec-fetch-site") === "cross-site") {
    // A cross-site <img> or <form> without Origin (a GET, or a browser that omits it).
    throw new HttpError(403, "cross-site request refused (no Origin)");
  }
  let preflight: Response | null = null;
  if (req.method === "OPTIONS" && req.headers.has("access-control-request-method")) {
    preflight = new Response(null, {
      status: 204,
      headers: {
        ...headers,
        "access-control-allow-methods": CORS_METHODS,
        "access-control-allow-headers": CORS_HEADERS,
        "access-control-max-age": "600",
      },
    });
  }
  return { headers, preflight } satisfies AccessDecision;
}
