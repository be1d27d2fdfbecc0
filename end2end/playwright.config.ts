import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// One lakepulse for the whole run: its own embedded broker port, a fresh data dir, no demo
// traffic, so every event on screen is one a test produced.
export const PORT = Number(process.env.E2E_PORT ?? 3311);
export const BROKER_PORT = Number(process.env.E2E_BROKER_PORT ?? 19392);
const bin = process.env.LAKEPULSE_BIN;
if (!bin) throw new Error('LAKEPULSE_BIN must point at the built lakepulse binary (make e2e sets it)');
const dataDir = mkdtempSync(join(tmpdir(), 'lakepulse-e2e-'));

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: {
    command: `${bin} serve`,
    url: `http://127.0.0.1:${PORT}/health`,
    timeout: 120_000,
    reuseExistingServer: false,
    // lakepulse stops its embedded broker itself (in a process group of its own, so killing
    // lakepulse's group would leave it running).
    gracefulShutdown: { signal: 'SIGTERM', timeout: 20_000 },
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      PORT: String(PORT),
      EMBEDDED_BROKER_PORT: String(BROKER_PORT),
      DATA_DIR: dataDir,
      DEMO: '0',
      COMMIT_INTERVAL_MS: '500',
      // A line per request would bury what matters in the report (tens of thousands a run).
      RUST_LOG: 'warn,lakepulse=info,lakepulse::requests=warn',
    },
  },
});
