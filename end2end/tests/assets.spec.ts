import { test, expect } from '@playwright/test';

const KEPT_FOR_GOOD = 'public, max-age=31536000, immutable';

// What a browser downloads: the bundle's content-named files, Brotli or gzip made ahead of
// time and kept for good, so a repeat visit fetches the page alone; the page and JSON answers
// gzipped and revalidated; the live stream gzip as it flows.
test('the bundle goes out precompressed and kept for good, a repeat visit fetches only the page', async ({ request, browser }) => {
  const html = await (await request.get('/')).text();
  const files = [...new Set(html.match(/\/pkg\/lakepulse\.[0-9a-f]{16}(\.js|_bg\.wasm|\.css|\.echarts\.js)/g))];
  expect(files.map((f) => f.replace(/\.[0-9a-f]{16}/, '')).sort()).toEqual(
    ['/pkg/lakepulse.css', '/pkg/lakepulse.echarts.js', '/pkg/lakepulse.js', '/pkg/lakepulse_bg.wasm'],
  );
  let wire = 0;
  for (const path of files) {
    for (const encoding of ['br', 'gzip']) {
      const file = await request.get(path, { headers: { 'Accept-Encoding': encoding } });
      expect(file.status(), path).toBe(200);
      expect(file.headers()['content-encoding'], path).toBe(encoding);
      expect(file.headers()['cache-control'], path).toBe(KEPT_FOR_GOOD);
      if (encoding === 'br') wire += Number(file.headers()['content-length']);
    }
  }
  const page = await request.get('/', { headers: { 'Accept-Encoding': 'gzip' } });
  expect(page.headers()['content-encoding']).toBe('gzip');
  expect(page.headers()['cache-control']).toBe('no-cache');
  // JSON answers too.
  const answer = await request.post('/api/query', {
    data: { query: 'SELECT * FROM generate_series(1, 200)' },
    headers: { 'Accept-Encoding': 'gzip' },
  });
  expect(answer.status()).toBe(200);
  expect(answer.headers()['content-encoding']).toBe('gzip');
  expect(await request.get('/pkg/lakepulse.0000000000000000.js').then((r) => r.headers()['cache-control'])).toBe('no-cache');
  // A first visit's weight on the wire (the page's own few KB aside).
  expect(wire).toBeLessThan(700_000);

  // A browser: the first visit fetches the bundle, the next page finds it in its cache.
  const context = await browser.newContext();
  const tab = await context.newPage();
  const cdp = await context.newCDPSession(tab);
  await cdp.send('Network.enable');
  const sent = new Map<string, string>();
  const cached = new Set<string>();
  cdp.on('Network.requestWillBeSent', (e) => sent.set(e.requestId, new URL(e.request.url).pathname));
  cdp.on('Network.requestServedFromCache', (e) => cached.add(e.requestId));
  cdp.on('Network.responseReceived', (e) => {
    if (e.response.fromDiskCache) cached.add(e.requestId);
  });
  const bundleFetched = () => [
    ...new Set([...sent].filter(([id, path]) => path.startsWith('/pkg/') && !cached.has(id)).map(([, path]) => path)),
  ].sort();
  const stream = tab.waitForResponse((r) => r.url().includes('/events'));
  await tab.goto('/');
  const events = await stream;
  // The live stream comes gzip too, each message deflated on its own and shared by every
  // client: the page reads each one as it arrives.
  expect(events.headers()['content-encoding']).toBe('gzip');
  // Live once hydrated: the wasm has arrived.
  await expect(tab.getByTestId('status-stream')).toContainText('Live stream live');
  expect(bundleFetched()).toEqual([...files].sort());
  sent.clear();
  cached.clear();
  await tab.goto('/logs');
  await expect(tab.getByTestId('status-stream')).toContainText('Live stream live');
  expect(bundleFetched()).toEqual([]);
  await context.close();
});
