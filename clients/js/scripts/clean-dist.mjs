// Empties dist/ before a build, so a module removed from src/ does not linger in the
// committed output.
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

rmSync(fileURLToPath(new URL("../dist", import.meta.url)), { recursive: true, force: true });
