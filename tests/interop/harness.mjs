// Starts the courier binary on a free port and signs tokens with it.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { once } from "node:events";

const here = path.dirname(fileURLToPath(import.meta.url));
export const COURIER_BIN =
  process.env.COURIER_BIN ?? path.resolve(here, "../../target/debug/courier");
export const SECRET = "interop-test-secret";

/** The environment for the server and the token command. */
function courierEnv(extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: "info",
    SOCKET_SECRET: SECRET,
    COURIER__SERVER__HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: "sqlite::memory:",
    ...extra,
  };
}

/** Starts courier; resolves once it logs its port. */
export async function startServer(extraEnv = {}) {
  const proc = spawn(COURIER_BIN, ["serve"], {
    env: courierEnv(extraEnv),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`courier did not start:\n${log}`)),
      20000,
    );
    proc.stderr.on("data", (chunk) => {
      log += chunk;
      const m = log.match(/listening on http:\/\/[^\s:]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`courier exited with ${code}:\n${log}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      await once(proc, "exit");
    },
  };
}

/** A token for `user` from `courier token`. */
export function token(user, ttl = 60, extraEnv = {}) {
  return execFileSync(COURIER_BIN, ["token", "--user", user, "--ttl", String(ttl)], {
    env: courierEnv(extraEnv),
    encoding: "utf8",
  }).trim();
}

/** Resolves with the first of `events` the socket emits (name and args). */
export function first(socket, events, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`none of ${events.join(", ")} within ${ms} ms`)),
      ms,
    );
    for (const name of events) {
      socket.once(name, (...args) => {
        clearTimeout(timer);
        resolve({ name, args });
      });
    }
  });
}
