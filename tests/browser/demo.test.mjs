// The demo page (`GET /demo`) in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Alice types, Bob's pane shows the message, Alice's pane shows it read; a
// screenshot is saved to target/test-artifacts/demo.png once both panes are connected. Each
// pane shows the other user's presence as it is, and the conversation's last messages,
// without waiting for a change (another tab, a reload). With a real secret the demo routes
// do not exist.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import path from "node:path";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const COURIER_BIN = process.env.COURIER_BIN ?? path.join(repo, "target/debug/courier");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.COURIER_TEST_ARTIFACTS ?? path.join(repo, "target/test-artifacts");
const WAIT = 15000;

// Every process and temp directory this file creates goes when it exits, whatever happens.
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
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "courier-browser-"));
  tempDirs.add(dir);
  return { dir, url: `sqlite://${path.join(dir, "courier.db")}?mode=rwc` };
}

/**
 * Courier's environment: loopback, a free port, the database; no SOCKET_SECRET (so the
 * built-in development secret) unless `extra` sets one. Nothing is inherited but PATH/HOME.
 */
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

/** `courier seed-demo` against `db`. */
function seedDemo(db) {
  execFileSync(COURIER_BIN, ["seed-demo"], {
    cwd: db.dir, // away from the repository's config/local.toml
    env: courierEnv(db),
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 20000,
  });
}

/** Starts courier on `db`; resolves with its URL once it logs `listening on http://...`. */
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

/** A port that was free a moment ago (to restart a server on the same one). */
async function freePort() {
  const probe = net.createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address();
  probe.close();
  await once(probe, "close");
  return port;
}

let browser;

before(async () => {
  assert.ok(fs.existsSync(COURIER_BIN), `no courier binary at ${COURIER_BIN} (cargo build first)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
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
});

/** A new page that fails the test on any uncaught error in it. */
async function openPage(url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  return { page, errors };
}

test("the demo page: Alice types, Bob receives, Alice sees it read", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  seedDemo(db);
  const server = await startServer(db);
  try {
    const { page, errors } = await openPage(`${server.url}/demo`);
    assert.equal(await page.title(), "Courier demo");
    for (const who of ["alice", "bob"]) {
      await page.waitForSelector(`#state-${who}[data-state="ready"]`, { timeout: WAIT });
    }
    assert.equal(await page.textContent("#name-alice"), "Alice");
    assert.equal(await page.textContent("#name-bob"), "Bob");
    await bothOnline(page);

    const hello = `Hello Bob, it is Alice (${Date.now()})`;
    await page.fill("#input-alice", hello);
    await page.click("#send-alice");
    const atBob = page.locator("#messages-bob li.theirs", { hasText: hello });
    await atBob.waitFor({ timeout: WAIT });
    const atAlice = page.locator('#messages-alice li.mine[data-state="read"]', { hasText: hello });
    await atAlice.waitFor({ timeout: WAIT });
    assert.match(await atAlice.locator(".info").textContent(), /read/);
    assert.equal(
      await atAlice.getAttribute("data-message-id"),
      await atBob.getAttribute("data-message-id"),
    );

    // Bob answers with markup, which is shown as text.
    const reply = "<b>Hi Alice!</b> & welcome";
    await page.fill("#input-bob", reply);
    await page.press("#input-bob", "Enter");
    const atAlice2 = page.locator("#messages-alice li.theirs");
    await atAlice2.waitFor({ timeout: WAIT });
    assert.equal(await atAlice2.locator(".text").textContent(), reply);
    assert.equal(await page.locator("#messages-alice b").count(), 0, "no HTML from a message");
    await page
      .locator('#messages-bob li.mine[data-state="read"]')
      .waitFor({ timeout: WAIT });

    // Both panes connected (not "connecting…") when the picture is taken.
    for (const who of ["alice", "bob"]) {
      await page.waitForSelector(`#state-${who}[data-state="ready"]`, { timeout: WAIT });
      assert.equal(await page.textContent(`#state-${who}`), "connected");
    }
    await bothOnline(page);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.resolve(ARTIFACTS, "demo.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);

    // Presence: how the page shows the events the server is to send (another issue).
    const bob = await page.evaluate(() => panes[1].me.id);
    const presence = (type, payload) =>
      page.evaluate(([t, p]) => panes[0].onEvent(t, p), [type, payload]);
    const now = new Date().toISOString();
    await presence("user_online_status", { userId: bob, isOnline: true, lastSeenAt: now, timestamp: now });
    assert.equal(await page.getAttribute("#presence-alice", "data-presence"), "online");
    assert.equal(await page.textContent("#presence-label-alice"), "Bob: online");
    await presence("user_offline_status", { userId: bob, isOnline: false, lastSeenAt: now, timestamp: now });
    assert.equal(await page.getAttribute("#presence-alice", "data-presence"), "offline");
    assert.match(await page.textContent("#presence-label-alice"), /^Bob: offline/);
    await presence("user_online_status", { userId: "someone-else", isOnline: true });
    assert.equal(await page.getAttribute("#presence-alice", "data-presence"), "offline");
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await server.stop();
  }
});

/** Waits until each pane shows the other user online. */
async function bothOnline(page) {
  for (const [who, other] of [["alice", "Bob"], ["bob", "Alice"]]) {
    await page.waitForSelector(`#presence-${who}[data-presence="online"]`, { timeout: WAIT });
    assert.equal(await page.textContent(`#presence-label-${who}`), `${other}: online`);
  }
}

/** The messages a pane shows, oldest first: `[class, text, state]`. */
function shown(page, who) {
  return page.$$eval(`#messages-${who} li`, (items) =>
    items.map((li) => [li.className, li.querySelector(".text").textContent, li.dataset.state]),
  );
}

test("presence and the last messages are shown at once, in another tab and after a reload", { timeout: 90000 }, async () => {
  const db = tempDatabase();
  seedDemo(db);
  const server = await startServer(db);
  try {
    const first = await openPage(`${server.url}/demo`);
    for (const who of ["alice", "bob"]) {
      await first.page.waitForSelector(`#state-${who}[data-state="ready"]`, { timeout: WAIT });
    }
    const hello = `first words ${Date.now()}`;
    await first.page.fill("#input-alice", hello);
    await first.page.press("#input-alice", "Enter");
    await first.page
      .locator('#messages-alice li.mine[data-state="read"]', { hasText: hello })
      .waitFor({ timeout: WAIT });
    const reply = `an answer ${Date.now()}`;
    await first.page.fill("#input-bob", reply);
    await first.page.press("#input-bob", "Enter");
    await first.page
      .locator('#messages-bob li.mine[data-state="read"]', { hasText: reply })
      .waitFor({ timeout: WAIT });
    await bothOnline(first.page);

    // Another tab: Alice and Bob are online already, so no presence event comes; the
    // panes must show it anyway, and the conversation so far.
    const second = await openPage(`${server.url}/demo`);
    for (const who of ["alice", "bob"]) {
      await second.page.waitForSelector(`#messages-${who}[data-history="loaded"]`, { timeout: WAIT });
    }
    await bothOnline(second.page);
    assert.deepEqual(
      await second.page.evaluate(() => panes.map((p) => p.presenceEvents)),
      [0, 0],
      "the presence shown came with no event",
    );
    assert.deepEqual(await shown(second.page, "alice"), [
      ["mine", hello, "read"],
      ["theirs", reply, "received"],
    ]);
    assert.deepEqual(await shown(second.page, "bob"), [
      ["theirs", hello, "received"],
      ["mine", reply, "read"],
    ]);

    // A reload of the first tab: the same.
    await first.page.reload();
    for (const who of ["alice", "bob"]) {
      await first.page.waitForSelector(`#messages-${who}[data-history="loaded"]`, { timeout: WAIT });
    }
    await bothOnline(first.page);
    assert.deepEqual(await shown(first.page, "alice"), await shown(second.page, "alice"));
    assert.deepEqual(await shown(first.page, "bob"), await shown(second.page, "bob"));
    assert.deepEqual(first.errors, []);
    assert.deepEqual(second.errors, []);
    await first.page.close();
    await second.page.close();
  } finally {
    await server.stop();
  }
});

test("the panes reconnect when the server comes back", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  seedDemo(db);
  const port = { PORT: String(await freePort()) };
  let server = await startServer(db, port);
  try {
    const { page, errors } = await openPage(`${server.url}/demo`);
    const ready = (who) =>
      page.waitForSelector(`#state-${who}[data-state="ready"]`, { timeout: WAIT });
    await Promise.all([ready("alice"), ready("bob")]);
    await server.stop();
    await page.waitForSelector('#state-alice[data-state="closed"]', { timeout: WAIT });
    assert.equal(await page.getAttribute("#presence-alice", "data-presence"), "unknown");
    server = await startServer(db, port);
    await Promise.all([ready("alice"), ready("bob")]);
    const text = `after the restart ${Date.now()}`;
    await page.fill("#input-bob", text);
    await page.press("#input-bob", "Enter");
    await page.locator("#messages-alice li.theirs", { hasText: text }).waitFor({ timeout: WAIT });
    await page
      .locator('#messages-bob li.mine[data-state="read"]', { hasText: text })
      .waitFor({ timeout: WAIT });
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await server.stop();
  }
});

test("without demo users the page says to run seed-demo", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  const server = await startServer(db);
  try {
    const session = await fetch(`${server.url}/demo/session`);
    assert.equal(session.status, 404);
    assert.match((await session.json()).message, /cargo run --release -- seed-demo/);
    const { page, errors } = await openPage(`${server.url}/demo`);
    await page.waitForSelector("#banner:not([hidden])", { timeout: WAIT });
    assert.match(await page.textContent("#banner"), /seed-demo/);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await server.stop();
  }
});

test("with a real secret there is no demo", { timeout: 60000 }, async () => {
  const db = tempDatabase();
  seedDemo(db);
  for (const env of [{ SOCKET_SECRET: "a-real-secret" }, { COURIER__AUTH__SECRET: "another" }]) {
    const server = await startServer(db, env);
    try {
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      for (const route of ["/demo", "/demo/session"]) {
        assert.equal((await fetch(`${server.url}${route}`)).status, 404, route);
      }
    } finally {
      await server.stop();
    }
  }
});
