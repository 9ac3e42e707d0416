// Ships the client to the job console (console/static/console/client/, served by Django
// without a build step), or checks that the committed copy is what a fresh build gives.
//
//   node scripts/console.mjs write   compiles src/ and writes the console's copy
//   node scripts/console.mjs check   exits 1 (and says how to fix it) when they differ
//
// The copy is tsc's ES module output of every module but react.ts (the console has no
// React), each file headed by a line saying where it comes from. Never edit it by hand.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = resolve(fileURLToPath(import.meta.url), "../..");
const target = resolve(packageDir, "../../console/static/console/client");
const HEADER =
  "// Generated from clients/typescript/src by `node scripts/console.mjs write` (there).\n" +
  "// Do not edit: make test-client fails when it differs from a fresh build.\n";
const SKIPPED = new Set(["react.js"]);

function built() {
  const dir = mkdtempSync(join(tmpdir(), "tenant-jobs-console-"));
  try {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    execFileSync(
      process.execPath,
      [tsc, "-p", "tsconfig.build.json", "--outDir", dir, "--declaration", "false"],
      { cwd: packageDir, stdio: "inherit" },
    );
    const files = new Map();
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith(".js") && !SKIPPED.has(name)) {
        files.set(name, HEADER + readFileSync(join(dir, name), "utf8"));
      }
    }
    return files;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function committed() {
  const files = new Map();
  let names = [];
  try {
    names = readdirSync(target).sort();
  } catch {
    return files;
  }
  for (const name of names) files.set(name, readFileSync(join(target, name), "utf8"));
  return files;
}

const mode = process.argv[2];
const fresh = built();
if (mode === "write") {
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  for (const [name, text] of fresh) writeFileSync(join(target, name), text);
  console.log(`wrote ${[...fresh.keys()].join(", ")} to ${target}`);
} else if (mode === "check") {
  const current = committed();
  const names = new Set([...fresh.keys(), ...current.keys()]);
  const differing = [...names].filter((name) => fresh.get(name) !== current.get(name));
  if (differing.length) {
    console.error(
      `console/static/console/client/ differs from a fresh build of src/ (${differing.join(", ")}):` +
        " run `node scripts/console.mjs write` in clients/typescript and commit the result.",
    );
    process.exit(1);
  }
  console.log("console/static/console/client/ is what src/ builds");
} else {
  console.error("usage: node scripts/console.mjs write|check");
  process.exit(2);
}
