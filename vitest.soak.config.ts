import { defineConfig } from 'vitest/config';

// The soak (test/sim/soak.ts), started by `npm run soak`; never part of `npm test`.
export default defineConfig({
  test: {
    include: ['test/sim/soak.ts'],
    testTimeout: 0,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
