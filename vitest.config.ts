import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Privileged tests create network namespaces and TAP devices; keep files sequential so they
    // never fight over the 2 cores or over interface names, and give them room.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
