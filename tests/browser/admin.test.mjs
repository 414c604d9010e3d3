// The Socket.IO Admin UI (@socket.io/admin-ui 0.5.1's own built UI, ui/dist, served from a
// static server on another origin) against Courier with `admin.enabled`, in Debian's headless
// Chromium driven by playwright-core. The demo page connects Alice's and Bob's chat sockets
// (each joins their conversation); the UI logs in with the password (hashed by
// `courier hash-password`) and lists both sockets and the conversation's room. A wrong
// password is refused with the UI's "Invalid credentials". A screenshot is saved to
// target/test-artifacts/admin-ui.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import { createRequire } from "node:module";
import http from "node:http";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const COURIER_BIN = process.env.COURIER_BIN ?? path.join(repo, "target/debug/courier");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.COURIER_TEST_ARTIFACTS ?? path.join(repo, "target/test-artifacts");
const UI_DIST = path.join(
  path.dirname(createRequire(import.meta.url).resolve("@socket.io/admin-ui/package.json")),
  "ui/dist",
);
const WAIT = 15000;
const PASSWORD = "admin-ui browser test password";

// Every process, server and temp directory this file creates goes when it exits.
const live = new Set();
const tempDirs = new Set();
process.on("exit", () => {
  for (const proc of live) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A temp directory with an SQLite database URL in it (removed at the end). */
function tempDatabase() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "courier-admin-"));
  tempDirs.add(dir);
  return { dir, url: `sqlite://${path.join(dir, "courier.db")}?mode=rwc` };
}

/** Courier's environment: loopback, free ports, the database; nothing else inherited. */
function courierEnv(db, extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: "info",
    COURIER__SERVER__HOST: "127.0.0.1",
    PORT: "0",
    COURIER__METRICS__BIND: "127.0.0.1:0",
    DATABASE_URL: db.url,
    ...extra,
  };
}

/** Runs `courier ARGS` on `db` with `input` on stdin; its stdout. */
function courier(db, args, input = "") {
  return execFileSync(COURIER_BIN, args, {
    cwd: db.dir, // away from the repository's config/local.toml
    env: courierEnv(db),
    input,
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 20000,
  }).toString();
}

/** Starts courier on `db`; resolves once it logs `listening on http://...`. */
async function startServer(db, extra = {}) {
  const proc = spawn(COURIER_BIN, ["serve"], {
    cwd: db.dir,
    env: courierEnv(db, extra),
    stdio: ["ignore", "ignore", "pipe"],
  });
  live.add(proc);
  proc.on("exit", () => live.delete(proc));
  let log = "";
  proc.stderr.on("data", (chunk) => {
    log += chunk;
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`courier did not start:\n${log}`)), 20000);
    const onData = () => {
      const m = log.match(/listening on http:\/\/[^\s:]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        proc.stderr.off("data", onData);
        resolve(Number(m[1]));
      }
    };
    proc.stderr.on("data", onData);
    proc.once("error", reject);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`courier exited with ${code ?? signal}:\n${log}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, "exit");
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

/** Serves `root` on 127.0.0.1, a free port: the admin UI's own origin. */
async function serveStatic(root) {
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = path.join(root, name === "/" ? "index.html" : name);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

let browser;
let ui;

before(async () => {
  assert.ok(fs.existsSync(COURIER_BIN), `no courier binary at ${COURIER_BIN} (cargo build first)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  assert.ok(fs.existsSync(path.join(UI_DIST, "index.html")), `no admin UI at ${UI_DIST}`);
  ui = await serveStatic(UI_DIST);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await ui?.close();
});

/** A fresh page (its own storage); only loopback is reached (the UI's fonts and icons are not). */
async function openPage(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.route(/.*/, (route) => {
    const { hostname } = new URL(route.request().url());
    return hostname === "127.0.0.1" ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  return { page, errors, close: () => context.close() };
}

/** Fills the UI's connection form and submits it. */
async function logIn(page, serverUrl, password) {
  const dialog = page.locator(".v-dialog--active");
  await dialog.waitFor({ timeout: WAIT });
  await dialog.getByLabel("Server URL").fill(serverUrl);
  await dialog.getByLabel("Username").fill("admin");
  await dialog.getByLabel("Password").fill(password);
  // The namespace and path are under "Advanced options": /admin and /socket.io, the defaults.
  await dialog.getByText("Advanced options").click();
  assert.equal(await dialog.getByLabel("Namespace").inputValue(), "/admin");
  assert.equal(await dialog.getByLabel("Path").inputValue(), "/socket.io");
  await dialog.getByRole("button", { name: "Connect" }).click();
}

/** A server with the admin UI on (development mode, the UI's origin allowed) and the demo. */
async function adminServer() {
  const db = tempDatabase();
  const seeded = courier(db, ["seed-demo"]);
  const connectionId = seeded.match(/connectionId:\s*(\S+)/)[1];
  const hash = courier(db, ["hash-password"], `${PASSWORD}\n`).trim();
  assert.match(hash, /^\$2[aby]\$\d\d\$.{53}$/);
  const server = await startServer(db, {
    COURIER__ADMIN__ENABLED: "true",
    COURIER__ADMIN__PASSWORD_HASH: hash,
    COURIER__ADMIN__MODE: "development",
    COURIER__ADMIN__ORIGINS: ui.url,
  });
  return { server, connectionId };
}

test("the admin UI lists the chat's sockets and their room", { timeout: 90000 }, async () => {
  const { server, connectionId } = await adminServer();
  try {
    // Two chat sockets (Alice's and Bob's panes), each in the conversation.
    const demo = await openPage(`${server.url}/demo`);
    for (const who of ["alice", "bob"]) {
      await demo.page.waitForSelector(`#state-${who}[data-state="ready"]`, { timeout: WAIT });
    }

    const admin = await openPage(`${ui.url}/`);
    const { page } = admin;
    await logIn(page, server.url, PASSWORD);
    await page.locator(".v-dialog--active").waitFor({ state: "detached", timeout: WAIT });

    // Sockets: the two chat sockets on "/", over WebSocket from 127.0.0.1.
    await page.evaluate(() => {
      location.hash = "#/sockets/";
    });
    const rows = page.locator(".v-data-table tbody tr");
    await rows.nth(1).waitFor({ timeout: WAIT });
    assert.equal(await rows.count(), 2, await page.locator(".v-data-table").innerText());
    for (let i = 0; i < 2; i++) {
      const text = await rows.nth(i).innerText();
      assert.match(text, /127\.0\.0\.1/);
    }

    // Rooms: the conversation, with both sockets.
    await page.evaluate(() => {
      location.hash = "#/rooms/";
    });
    const room = page.locator(".v-data-table tbody tr", { hasText: connectionId });
    await room.waitFor({ timeout: WAIT });
    assert.match(await room.innerText(), /\b2\b/);

    // One socket's page (a click on its row) shows its rooms: its own and the conversation.
    await page.evaluate(() => {
      location.hash = "#/sockets/";
    });
    await rows.nth(1).waitFor({ timeout: WAIT });
    const id = (await rows.nth(0).locator("td").first().innerText()).trim();
    await rows.nth(0).click();
    await page.waitForFunction(() => location.hash.startsWith("#/n/"), null, { timeout: WAIT });
    const rooms = page.locator(".v-card", { hasText: "Rooms" }).last();
    await rooms.getByText(connectionId).waitFor({ timeout: WAIT });
    await rooms.getByText(id).first().waitFor({ timeout: WAIT });

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.evaluate(() => {
      location.hash = "#/sockets/";
    });
    await rows.nth(1).waitFor({ timeout: WAIT });
    const shot = path.resolve(ARTIFACTS, "admin-ui.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);

    assert.deepEqual(admin.errors, []);
    assert.deepEqual(demo.errors, []);
    await admin.close();
    await demo.close();
  } finally {
    await server.stop();
  }
});

test("the admin UI says a wrong password is refused", { timeout: 60000 }, async () => {
  const { server } = await adminServer();
  try {
    const admin = await openPage(`${ui.url}/`);
    await logIn(admin.page, server.url, "not the password");
    await admin.page
      .locator(".v-dialog--active")
      .getByText("Invalid credentials")
      .waitFor({ timeout: WAIT });
    assert.match(server.log(), /refused: invalid credentials/);
    assert.ok(!server.log().includes("not the password"), "the password is not logged");
    await admin.close();
  } finally {
    await server.stop();
  }
});
