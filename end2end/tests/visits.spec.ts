import { test, expect } from '@playwright/test';
import { produce, settledTotal } from './helpers';

/** A count as the page writes it: `999`, `1.2k`, `2.5M`. */
function counted(text: string): number {
  const [, digits, unit] = text.trim().match(/^([0-9.]+)([kM]?)$/) ?? [, 'NaN', ''];
  return Number(digits) * (unit === 'k' ? 1e3 : unit === 'M' ? 1e6 : 1);
}

// GoAccess's panels on the overview: the numbers are the live report's, they follow the
// window in the URL, and each panel's SQL answers the same question from the lake.
test('visit panels show the live report for the window and link to its SQL', async ({ page, request }) => {
  produce(60);
  await settledTotal(request);
  await page.goto('/?window=all');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  const report = await (await request.get('/api/visits?window=all')).json();
  expect(report.window).toBe('all');
  expect(report.visitors).toBeGreaterThan(0);
  // The stream brings a fresh report every five seconds; while events are still counted
  // the figure may grow, never fall below what the API said a moment ago.
  await expect(async () => {
    const shown = counted(await page.getByTestId('unique-visitors').innerText());
    expect(shown).toBeGreaterThanOrEqual(report.visitors * 0.95);
  }).toPass({ timeout: 15_000 });
  const hours = page.getByTestId('panel-hour_of_day');
  await expect(hours.locator('tbody tr').first()).toBeVisible();
  await expect(page.getByTestId('panel-browsers').locator('tbody tr').first()).toBeVisible();
  await expect(page.getByTestId('panel-hosts').locator('tbody tr').first()).toBeVisible();

  // Hits per hour in SQL add up to every event in the lake, as the live panel's do.
  await hours.getByRole('link', { name: 'SQL' }).click();
  await expect(page).toHaveURL(/\/query\?sql=/);
  await expect(page.getByTestId('sql-result').locator('tbody tr').first()).toBeVisible({ timeout: 30_000 });
  const hits = await page.getByTestId('sql-result').locator('tbody tr td:nth-child(2)').allInnerTexts();
  expect(hits.map(Number).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);

  // Another window is another report, and the stream follows it.
  await page.goto('/?window=1m');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  await expect(page.getByRole('heading', { name: /Visits \(1m\)/ })).toBeVisible();
});

test('an unknown window is refused, not guessed', async ({ request }) => {
  const answer = await request.get('/api/visits?window=2d');
  expect(answer.status()).toBe(400);
  expect((await answer.json()).error).toContain('2d');
  expect((await request.get('/events?window=2d')).status()).toBe(400);
});
