// Fails when the committed dist/ is not exactly what `npm run build` makes from src/.
// The gateway embeds dist/ and serves it as /sdk/, so a stale dist would ship old code.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const committed = join(root, "dist");
const fresh = mkdtempSync(join(tmpdir(), "chorus-sdk-dist-"));

function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  try {
    walk(dir);
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  return out.sort();
}

try {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", fresh], { stdio: "inherit" });

  const want = files(fresh);
  const have = files(committed);
  const problems = [];
  for (const f of want) {
    if (!have.includes(f)) problems.push(`missing: dist/${f}`);
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) problems.push(`stale:   dist/${f}`);
  }
  for (const f of have) if (!want.includes(f)) problems.push(`extra:   dist/${f}`);

  if (problems.length > 0) {
    console.error("dist/ does not match src/:\n  " + problems.join("\n  "));
    console.error("run `npm run build` in clients/js and commit dist/");
    process.exitCode = 1;
  } else {
    console.log(`dist/ is up to date (${want.length} files)`);
  }
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
