import { test, expect } from '@playwright/test';
import { produce } from './helpers';

test('the explorer is server-rendered with the URL\'s filters', async ({ browser }) => {
  produce(200);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/logs?source=catalog-service');
  const sources = page.getByTestId('log-list').locator('.source');
  await expect(sources.first()).toBeVisible();
  expect(new Set(await sources.allInnerTexts())).toEqual(new Set(['catalog-service']));
  await expect(page.getByTestId('filter-source')).toHaveValue('catalog-service');
  await page.screenshot({ path: 'test-results/logs.png', fullPage: true });
  await context.close();
});

test('filters go into the URL, survive a reload, and the live stream keeps to them', async ({ page }) => {
  await page.goto('/logs');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  await page.getByTestId('filter-source').fill('auth-service');
  await page.getByTestId('filter-apply').click();
  await expect(page).toHaveURL(/source=auth-service/);
  await page.reload();
  await expect(page.getByTestId('filter-source')).toHaveValue('auth-service');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  const newest = await page.getByTestId('log-list').locator('li time').first().innerText();
  produce(200);
  await expect(page.getByTestId('log-list').locator('li time').first()).not.toHaveText(newest, { timeout: 20_000 });
  expect(new Set(await page.getByTestId('log-list').locator('.source').allInnerTexts())).toEqual(new Set(['auth-service']));
});

test('pause holds new events, resume shows exactly those, each once, and a click shows the full event', async ({ page }) => {
  // Events from now on only: the view starts empty, whatever earlier tests produced.
  await page.goto(`/logs?from=${encodeURIComponent(new Date().toISOString())}`);
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  const lines = page.getByTestId('log-list').locator('li');
  await expect(lines).toHaveCount(0);
  await page.getByTestId('pause').click();
  produce(50);
  // Nothing else produces (no demo traffic, one test at a time): all 50 are held.
  await expect(page.getByTestId('held')).toHaveText('50 new events held', { timeout: 20_000 });
  await expect(lines).toHaveCount(0);
  await page.getByTestId('pause').click();
  // Resuming shows the held events: all 50, each once.
  await expect(lines).toHaveCount(50);
  const seqs = await lines.evaluateAll((rows) => rows.map((row) => row.getAttribute('data-seq')));
  expect(new Set(seqs).size).toBe(50);
  await page.getByTestId('log-list').locator('button.logline').first().click();
  await expect(page.getByTestId('event-json')).toHaveCount(1);
  await expect(page.getByTestId('event-json')).toContainText('"endpoint"');
  // Newer events arrive above it; the open event stays open, and stays the only one.
  const opened = await page.getByTestId('event-json').innerText();
  const top = await page.getByTestId('log-list').locator('li').first().getAttribute('data-seq');
  produce(20);
  await expect(lines).toHaveCount(70, { timeout: 20_000 });
  await expect(page.getByTestId('log-list').locator('li').first()).not.toHaveAttribute('data-seq', top!);
  await expect(page.getByTestId('event-json')).toHaveCount(1);
  await expect(page.getByTestId('event-json')).toHaveText(opened);
  await expect(page.getByTestId('log-list').locator('button.logline').first()).toHaveAttribute('aria-expanded', 'false');
});

test('keyboard: / focuses the filter, g q opens the query page', async ({ page }) => {
  await page.goto('/logs');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  await page.keyboard.press('/');
  await expect(page.getByTestId('filter-q')).toBeFocused();
  await page.getByTestId('filter-q').blur();
  await page.keyboard.press('g');
  await page.keyboard.press('q');
  await expect(page).toHaveURL(/\/query$/);
});
