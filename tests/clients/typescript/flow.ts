// The sign-in flow through a client generated from openapi/openapi.json: types from
// openapi-typescript (`./schema.ts`, written at test time), requests with openapi-fetch.
//
// register -> validate (with the emailed code) -> login -> account -> refresh -> logout, then the
// old access token must get 401 on the account. Type-checked with `tsc --strict` and run with
// node by tests/api/clients.rs, with:
//
//   AUTHPOOL_BASE_URL  the server, e.g. http://127.0.0.1:8080
//   AUTHPOOL_MAIL_DIR  the folder the server writes one .eml file per message into
//
// Exits non-zero with a message on the first unexpected answer.

import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import createClient from "openapi-fetch";

import type { paths } from "./schema.js";

const PASSWORD = "correct horse battery staple";
const MAIL_DEADLINE_MS = 20_000;

function env(name: string): string {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function fail(message: string): never {
  console.error(`flow.ts: ${message}`);
  process.exit(1);
}

/** The body of a result with `status`; anything else ends the run. */
function expect<T>(
  step: string,
  result: { data?: T; error?: unknown; response: Response },
  status: number,
): T {
  const { data, error, response } = result;
  if (response.status !== status) {
    fail(
      `${step}: expected ${status}, got ${response.status}: ${JSON.stringify(error ?? data)}`,
    );
  }
  if (data === undefined) fail(`${step}: no body in the ${status} answer`);
  return data;
}

const baseUrl = env("AUTHPOOL_BASE_URL");
const mailDir = env("AUTHPOOL_MAIL_DIR");
const client = createClient<paths>({ baseUrl });

/** Headers (unfolded, names lower-cased) and body of one message or MIME part. */
function split(raw: string): { headers: Map<string, string>; body: string } {
  const end = raw.search(/\r?\n\r?\n/);
  const head = end < 0 ? raw : raw.slice(0, end);
  const body = end < 0 ? "" : raw.slice(end).replace(/^\r?\n\r?\n/, "");
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
    }
  }
  return { headers, body };
}

function decode(body: string, encoding: string): string {
  switch (encoding.trim().toLowerCase()) {
    case "base64":
      return Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
    case "quoted-printable": {
      const bytes = body
        .replace(/=\r?\n/g, "")
        .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) =>
          String.fromCharCode(parseInt(hex, 16)),
        );
      return Buffer.from(bytes, "latin1").toString("utf8");
    }
    default:
      return body;
  }
}

/** The decoded first text/plain part of a message or MIME part, if any. */
function plainText(raw: string): string | undefined {
  const { headers, body } = split(raw);
  const contentType = headers.get("content-type") ?? "text/plain";
  const mime = contentType.split(";")[0]?.trim().toLowerCase();
  if (mime?.startsWith("multipart/")) {
    const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
    if (!boundary) return undefined;
    for (const part of body.split(`--${boundary}`).slice(1)) {
      if (part.startsWith("--")) break;
      const text = plainText(part.replace(/^\r?\n/, ""));
      if (text !== undefined) return text;
    }
    return undefined;
  }
  if (mime !== "text/plain") return undefined;
  return decode(body, headers.get("content-transfer-encoding") ?? "7bit");
}

/** Polls the mail folder for a message to `to` and returns the six-digit code in its text. */
async function confirmationCode(to: string): Promise<string> {
  const deadline = Date.now() + MAIL_DEADLINE_MS;
  for (;;) {
    const names = (await readdir(mailDir).catch(() => [] as string[]))
      .filter((name) => name.endsWith(".eml"))
      .sort();
    for (const name of names) {
      const raw = await readFile(join(mailDir, name), "utf8");
      const { headers } = split(raw);
      if (!headers.get("to")?.toLowerCase().includes(to.toLowerCase())) continue;
      // A file still being written may lack its text part yet; it is read again next round.
      const code = /(?<!\d)\d{6}(?!\d)/.exec(plainText(raw) ?? "")?.[0];
      if (code) return code;
    }
    if (Date.now() > deadline) {
      fail(`no confirmation email to ${to} in ${mailDir} within ${MAIL_DEADLINE_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const email = `typescript-${randomUUID().slice(0, 12)}@example.org`;

const registered = expect(
  "register",
  await client.POST("/api/register", { body: { email, password: PASSWORD } }),
  201,
);
if (registered.status !== "UNCONFIRMED") {
  fail(`register: status ${registered.status}, expected UNCONFIRMED`);
}

const code = await confirmationCode(email);
expect(
  "validate",
  // As a form, as a browser's <form> would post it: the same fields, the same answer.
  await client.POST("/api/validate", {
    body: { user_name: email, confirmation_code: code },
    bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  }),
  200,
);

const tokens = expect(
  "login",
  await client.POST("/api/login", { body: { email, password: PASSWORD } }),
  200,
);

const bearer = { Authorization: `Bearer ${tokens.access_token}` };
const account = expect(
  "account",
  await client.GET("/api/account", { headers: bearer }),
  200,
);
if (account.email !== email || account.uid !== registered.uid) {
  fail(`account: ${JSON.stringify(account)} is not ${email} / ${registered.uid}`);
}
if (account.status !== "CONFIRMED" || !account.email_verified) {
  fail(`account: not confirmed and verified: ${JSON.stringify(account)}`);
}

// Node's fetch keeps no cookies, so this shows that the body alone is enough.
const refreshed = expect(
  "refresh",
  await client.POST("/api/refresh", {
    body: { refresh_token: tokens.refresh_token },
  }),
  200,
);
if (refreshed.refresh_token === tokens.refresh_token) {
  fail("refresh: the refresh token was not rotated");
}

expect(
  "logout",
  await client.POST("/api/logout", {
    headers: bearer,
    body: { everywhere: false },
  }),
  200,
);

const after = await client.GET("/api/account", { headers: bearer });
if (after.response.status !== 401) {
  fail(`account after logout: expected 401, got ${after.response.status}`);
}
console.log(`flow.ts: the whole flow ran for ${email}`);
