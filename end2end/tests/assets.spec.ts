import { test, expect } from '@playwright/test';

// What a browser downloads: the bundle, ECharts and pages gzipped; on the next visit an
// unchanged file is revalidated and costs a 304, never fetched again whole.
test('assets go out gzipped and are revalidated, the live stream is not compressed', async ({ request, browser }) => {
  for (const path of ['/pkg/lakepulse_bg.wasm', '/pkg/lakepulse.js', '/echarts.min.js', '/']) {
    const first = await request.get(path, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(first.status(), path).toBe(200);
    expect(first.headers()['content-encoding'], path).toBe('gzip');
    expect(first.headers()['cache-control'], path).toBe('no-cache');
  }
  const wasm = await request.get('/pkg/lakepulse_bg.wasm');
  const modified = wasm.headers()['last-modified'];
  expect(modified).toBeTruthy();
  const again = await request.get('/pkg/lakepulse_bg.wasm', { headers: { 'If-Modified-Since': modified } });
  expect(again.status()).toBe(304);

  // The page a person opens hydrates from those files all the same.
  const page = await browser.newPage();
  const stream = page.waitForResponse((r) => r.url().includes('/events'));
  await page.goto('/');
  const events = await stream;
  expect(events.headers()['content-encoding']).toBeUndefined();
  await expect(page.getByTestId('total-requests')).toBeVisible();
  await page.close();
});
