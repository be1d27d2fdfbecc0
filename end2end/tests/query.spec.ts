import { test, expect } from '@playwright/test';
import { produce, settledTotal } from './helpers';

const COUNT_BY_LEVEL = "SELECT level, count(*) AS n FROM logs WHERE level <> 'nope' GROUP BY level ORDER BY level";

test('a shared /query?sql= link shows its result in the server-rendered page', async ({ browser, request }) => {
  produce(20);
  // Wait until the lake has every event counted so far, and so stops changing (nothing else
  // produces): the page and the API below then read the same table.
  const total = await settledTotal(request);
  await expect(async () => {
    const answer = await (await request.post('/api/query', { data: { query: 'SELECT count(*) FROM logs' } })).json();
    expect(answer.rows[0][0]).toBe(total);
  }).toPass({ timeout: 30_000 });

  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`/query?sql=${encodeURIComponent(COUNT_BY_LEVEL)}`);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['level', 'n']);
  // The rendered rows are the API's answer to the same query, value for value.
  const answer = await (await request.post('/api/query', { data: { query: COUNT_BY_LEVEL } })).json();
  expect(answer.rows.length).toBeGreaterThan(0);
  const shown = await page.getByTestId('sql-result').locator('tbody tr').evaluateAll(
    (rows) => rows.map((row) => Array.from(row.querySelectorAll('td'), (td) => td.textContent)));
  expect(shown).toEqual(answer.rows.map((row: unknown[]) => row.map(String)));
  await expect(page.getByTestId('schema')).toContainText('response_time_ms');
  await page.screenshot({ path: 'test-results/query-permalink.png', fullPage: true });
  await context.close();
});

test('Ctrl+Enter runs the query, puts it in the URL and in the history, which survives a reload', async ({ page }) => {
  produce(5);
  await page.goto('/query');
  const editor = page.getByTestId('sql-input');
  // Text typed while the page hydrates is kept; Ctrl+Enter needs the hydrated page.
  await editor.fill("SELECT count(*) AS errors FROM logs WHERE status >= 500 -- ctrl-enter test");
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
  await expect(editor).toHaveValue(/ctrl-enter test$/);
  await editor.press('Control+Enter');
  await expect(page).toHaveURL(/ctrl-enter/);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['errors']);
  await page.reload();
  await expect(page.getByTestId('history')).toContainText('ctrl-enter test');
});

test('results download as CSV and JSON, and a bad query says what is wrong', async ({ page }) => {
  await page.goto(`/query?sql=${encodeURIComponent('SELECT 1 AS one, \'a,b\' AS two')}`);
  const csv = await (await page.request.get(await page.getByTestId('download-csv').getAttribute('href') ?? '')).text();
  expect(csv).toBe('one,two\n1,"a,b"\n');
  const json = await (await page.request.get(await page.getByTestId('download-json').getAttribute('href') ?? '')).json();
  expect(json.rows).toEqual([[1, 'a,b']]);

  await page.goto(`/query?sql=${encodeURIComponent('SELECT nope FROM logs')}`);
  await expect(page.getByTestId('sql-error')).toContainText('nope');
  await page.goto(`/query?sql=${encodeURIComponent('DROP TABLE logs')}`);
  await expect(page.getByTestId('sql-error')).toBeVisible();
});

test('time travel: version 0 is empty, a middle version holds what its commits added', async ({ page, request }) => {
  await page.goto(`/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM logs')}&version=0`);
  await expect(page.getByTestId('sql-result').locator('tbody td').first()).toHaveText('0');
  await expect(page.getByTestId('versions')).toContainText(/v\d+\s*WRITE/);

  // Three separate commits at least, so there is a middle one.
  type Version = { version: number; operation: string; rowsAdded: number | null };
  const writes = async () => ((await (await request.get('/api/lake/history?limit=1000')).json()) as Version[])
    .filter((v) => v.operation === 'WRITE');
  for (let i = 0; i < 3; i++) {
    const before = (await writes()).length;
    produce(5);
    await expect.poll(async () => (await writes()).length, { timeout: 20_000 }).toBeGreaterThan(before);
  }
  const all = await writes();
  const middle = all[Math.floor(all.length / 2)].version;
  const rowsThen = all.filter((v) => v.version <= middle).reduce((sum, v) => sum + (v.rowsAdded ?? 0), 0);
  const rowsNow = all.reduce((sum, v) => sum + (v.rowsAdded ?? 0), 0);
  expect(rowsThen).toBeGreaterThan(0);
  expect(rowsThen).toBeLessThan(rowsNow);
  await page.goto(`/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM logs')}&version=${middle}`);
  await expect(page.getByTestId('sql-result').locator('tbody td').first()).toHaveText(String(rowsThen));
});

test('a result becomes a chart in one click', async ({ page }) => {
  produce(10);
  await page.goto(`/query?sql=${encodeURIComponent('SELECT status, count(*) AS n FROM logs GROUP BY status ORDER BY status')}`);
  await expect(page.getByTestId('sql-result')).toBeVisible();
  // The result is server-rendered; the button does something once the page has hydrated.
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
  await page.getByTestId('chart-button').click();
  await expect(page.locator('#chart-result canvas')).toHaveCount(1);
  const bars = await page.evaluate(() => {
    const chart = (window as any).echarts.getInstanceByDom(document.getElementById('chart-result'));
    return chart.getOption().series[0].type;
  });
  expect(bars).toBe('bar');
});
