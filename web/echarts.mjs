// ECharts with only what the pages draw (line, bar and pie charts with grid, tooltip and
// legend, on canvas), as the global `echarts` that charming's WasmRenderer calls: a third of
// the full build's bytes.
import * as echarts from 'echarts/core';
import { BarChart, LineChart, PieChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([BarChart, LineChart, PieChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);
window.echarts = echarts;
