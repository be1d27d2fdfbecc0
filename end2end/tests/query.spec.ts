import { test, expect } from '@playwright/test';
import { produce, settledLake } from './helpers';

const COUNT_BY_LEVEL = "SELECT level, count(*) AS n FROM logs WHERE level <> 'nope' GROUP BY level ORDER BY level";

test('a shared /query?sql= link shows its result in the server-rendered page', async ({ browser, request }) => {
  produce(20);
  await settledLake(request);

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

test('saved queries: saved under a name, opened by their link, updated, renamed (the link stays) and deleted', async ({ page, request }) => {
  const name = `Events ${Date.now()}`;
  await page.goto(`/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM logs')}`);
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
  await page.getByTestId('save-name').fill(name);
  await page.getByTestId('save-query').click();
  await expect(page).toHaveURL(/\/query\?saved=\d+$/);
  const link = new URL(page.url()).pathname + new URL(page.url()).search;
  await expect(page.getByTestId('saved-name')).toHaveText(name);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['n']);
  await expect(page.getByTestId('saved-queries').getByRole('link', { name })).toHaveAttribute('href', link);
  // The same name again is refused, whatever its case.
  await page.getByTestId('save-name').fill(name.toUpperCase());
  await page.getByTestId('save-query').click();
  await expect(page.getByTestId('saved-error')).toContainText('already named');

  // An edit runs beside the saved query, and "Update" makes it the saved SQL.
  await page.getByTestId('sql-input').fill('SELECT count(*) AS errors FROM logs WHERE status >= 500');
  await page.getByTestId('sql-input').press('Control+Enter');
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['errors']);
  await page.getByTestId('saved-update').click();
  await expect(async () => {
    const saved = (await (await request.get('/api/saved-queries')).json()) as { name: string; sql: string }[];
    expect(saved.find((q) => q.name === name)?.sql).toContain('AS errors');
  }).toPass();

  // Renamed in the side panel: the link is the same and shows the new name.
  const entry = page.getByTestId('saved-queries').locator('li', { hasText: name });
  await entry.locator('summary').click();
  await entry.getByTestId('rename-name').fill(`${name} renamed`);
  await entry.getByTestId('rename-query').click();
  await expect(page.getByTestId('saved-queries').getByRole('link', { name: `${name} renamed` })).toHaveAttribute('href', link);
  await page.goto(link);
  await expect(page.getByTestId('saved-name')).toHaveText(`${name} renamed`);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['errors']);

  const renamed = page.getByTestId('saved-queries').locator('li', { hasText: `${name} renamed` });
  await renamed.locator('summary').click();
  await renamed.getByTestId('delete-query').click();
  await expect(page.getByTestId('saved-queries').getByRole('link', { name: `${name} renamed` })).toHaveCount(0);
  await page.goto(link);
  await expect(page.getByTestId('sql-error')).toContainText('no saved query');
});

test('downloads stream every row past the row cap as CSV, NDJSON and Parquet', async ({ page }) => {
  const series = 'SELECT value, \'v\' || value AS label FROM generate_series(1, 12345) ORDER BY value';
  await page.goto(`/query?sql=${encodeURIComponent(series)}`);
  await expect(page.getByTestId('sql-summary')).toContainText('(truncated)');
  const fetched = async (testId: string) => {
    const href = await page.getByTestId(testId).getAttribute('href');
    const response = await page.request.get(href!);
    expect(response.status()).toBe(200);
    return response;
  };
  const csv = (await (await fetched('download-csv')).text()).trimEnd().split('\n');
  expect(csv.length).toBe(12346);
  expect(csv[12345]).toBe('12345,v12345');
  const ndjson = (await (await fetched('download-ndjson')).text()).trimEnd().split('\n');
  expect(ndjson.length).toBe(12345);
  expect(JSON.parse(ndjson[0])).toEqual({ value: 1, label: 'v1' });
  const parquet = await fetched('download-parquet');
  expect(parquet.headers()['content-type']).toBe('application/vnd.apache.parquet');
  const file = await parquet.body();
  expect(file.subarray(0, 4).toString()).toBe('PAR1');
  expect(file.subarray(file.length - 4).toString()).toBe('PAR1');
  // The browser saves it as a file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-parquet').click()]);
  expect(download.suggestedFilename()).toBe('lakepulse-query.parquet');
});

test('the editor completes columns, tables and functions from the schema', async ({ page }) => {
  await page.goto('/query');
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
  const editor = page.getByTestId('sql-input');
  const completions = page.getByTestId('completions');
  await editor.fill('');
  await editor.pressSequentially('SELECT max(resp');
  await expect(completions.getByRole('option').first()).toContainText('response_time_ms');
  await editor.press('Tab');
  await expect(editor).toHaveValue('SELECT max(response_time_ms');
  await expect(completions).toHaveCount(0);
  await editor.pressSequentially('), approx_perc');
  await expect(completions.getByRole('option')).toContainText(['approx_percentile_cont']);
  await editor.press('Escape');
  await expect(completions).toHaveCount(0);
  await editor.pressSequentially('entile_cont(0.5) WITHIN GROUP (ORDER BY status) FROM lo');
  await expect(completions.getByRole('option').first()).toContainText('logs');
  await editor.press('Enter');
  await expect(editor).toHaveValue(/FROM logs$/);
  await editor.press('Control+Enter');
  await expect(page).toHaveURL(/FROM\+logs/);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveCount(2);
  // In a string, nothing is offered.
  await editor.fill("SELECT * FROM logs WHERE endpoint = 'res");
  await editor.pressSequentially('p');
  await expect(completions).toHaveCount(0);
});
