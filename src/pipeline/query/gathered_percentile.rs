//! `approx_percentile_cont` with its values gathered per group before they reach the group's
//! t-digest. DataFusion's own function has no grouped form: under GROUP BY each batch was cut
//! into one slice per group, and each slice sorted and merged into that group's digest, so 128
//! endpoints over 10 million rows made 156 000 small merges, two thirds of the per-endpoint
//! question's time (issue 13). Here a group's values wait until there are thousands of them,
//! then merge in one sort. The digests, their state, the percentile and the answer are
//! DataFusion's own (`ApproxPercentileAccumulator`), so a plan shipped to a cluster's executors
//! means the same.

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use deltalake::arrow::datatypes::{DataType, FieldRef, Float64Type};
use deltalake::datafusion::common::{Result, ScalarValue};
use deltalake::datafusion::functions_aggregate::approx_percentile_cont::{
    ApproxPercentileAccumulator, ApproxPercentileCont,
};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature,
};
use deltalake::datafusion::physical_expr::expressions::Literal;
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Values a group gathers before they are merged into its digest.
const GROUP_BATCH: usize = 4096;
/// Values all groups together may hold unmerged (8 MiB); past it every group merges, so many
/// groups of few values each cannot hold a copy of the whole column.
const MAX_WAITING: usize = 1 << 20;

/// Registers the gathering `approx_percentile_cont` in place of DataFusion's.
pub fn gather_percentile_values(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(GatheredPercentile(
        ApproxPercentileCont::new(),
    )));
}

/// DataFusion's `approx_percentile_cont`, with a grouped form that gathers values first.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GatheredPercentile(ApproxPercentileCont);

impl AggregateUDFImpl for GatheredPercentile {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.0.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.0.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.0.state_fields(args)
    }

    fn supports_within_group_clause(&self) -> bool {
        self.0.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.0.documentation()
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        Digests::settings(&args).is_some()
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match Digests::settings(&args) {
            Some(settings) => Ok(Box::new(Digests::new(settings))),
            // Not asked for: DataFusion calls this only where the check above said yes.
            None => self.0.create_groups_accumulator(args),
        }
    }
}

/// What every group's digest is made with.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// The percentile asked for, turned around for a descending order.
    percentile: f64,
    /// The digest's most centroids, when the call gives it.
    max_size: Option<usize>,
}

/// One group: its digest and the values waiting to join it.
struct Group {
    digest: ApproxPercentileAccumulator,
    waiting: Vec<f64>,
}

/// Every group's digest and waiting values.
struct Digests {
    settings: Settings,
    groups: Vec<Group>,
    /// Values waiting over all groups.
    waiting: usize,
}

impl Digests {
    /// The settings of a call this form answers: float64 values, the percentile (and the
    /// digest's size, when given) as literals. Other calls take DataFusion's own way, which
    /// also says what is wrong with them.
    fn settings(args: &AccumulatorArgs) -> Option<Settings> {
        let literal = |expr: &Arc<dyn PhysicalExpr>| {
            expr.downcast_ref::<Literal>()
                .map(|literal| literal.value().clone())
        };
        if args.expr_fields.first()?.data_type() != &DataType::Float64
            || args.return_field.data_type() != &DataType::Float64
        {
            return None;
        }
        let percentile = match literal(args.exprs.get(1)?)?.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(p))) if (0.0..=1.0).contains(&p) => p,
            _ => return None,
        };
        let max_size = match args.exprs.get(2) {
            None => None,
            Some(expr) => match literal(expr)?.cast_to(&DataType::UInt64) {
                Ok(ScalarValue::UInt64(Some(size))) if size > 0 => Some(size as usize),
                _ => return None,
            },
        };
        let descending = args.order_bys.first().is_some_and(|o| o.options.descending);
        Some(Settings {
            percentile: if descending {
                1.0 - percentile
            } else {
                percentile
            },
            max_size,
        })
    }

    fn new(settings: Settings) -> Self {
        Digests {
            settings,
            groups: Vec::new(),
            waiting: 0,
        }
    }

    /// A group with an empty digest, made as the call asks.
    fn new_group(settings: Settings) -> Group {
        let Settings {
            percentile,
            max_size,
        } = settings;
        Group {
            digest: match max_size {
                Some(size) => ApproxPercentileAccumulator::new_with_max_size(
                    percentile,
                    DataType::Float64,
                    size,
                ),
                None => ApproxPercentileAccumulator::new(percentile, DataType::Float64),
            },
            waiting: Vec::new(),
        }
    }

    fn make_room(&mut self, total_groups: usize) {
        let settings = self.settings;
        self.groups
            .resize_with(total_groups, || Self::new_group(settings));
    }

    /// Merges the groups' waiting values into their digests.
    fn merge_waiting(groups: &mut [Group]) -> Result<usize> {
        let mut merged = 0;
        for group in groups {
            merged += group.merge_waiting()?;
        }
        Ok(merged)
    }

    /// The groups `emit_to` names, out of this accumulator, their values merged.
    fn take(&mut self, emit_to: EmitTo) -> Result<Vec<Group>> {
        let mut taken = emit_to.take_needed(&mut self.groups);
        self.waiting -= Self::merge_waiting(&mut taken)?;
        Ok(taken)
    }
}

impl Group {
    /// Merges the waiting values into the digest; how many there were.
    fn merge_waiting(&mut self) -> Result<usize> {
        let count = self.waiting.len();
        if count > 0 {
            let values: ArrayRef = Arc::new(Float64Array::from(std::mem::take(&mut self.waiting)));
            self.digest.update_batch(&[values])?;
        }
        Ok(count)
    }
}

impl GroupsAccumulator for Digests {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.make_room(total_num_groups);
        let values = values[0].as_primitive::<Float64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if values.is_null(row) || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
            {
                continue;
            }
            let group = &mut self.groups[group];
            group.waiting.push(values.value(row));
            self.waiting += 1;
            if group.waiting.len() >= GROUP_BATCH {
                self.waiting -= group.merge_waiting()?;
            }
        }
        if self.waiting >= MAX_WAITING {
            self.waiting -= Self::merge_waiting(&mut self.groups)?;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let answers = self
            .take(emit_to)?
            .into_iter()
            .map(|mut group| group.digest.evaluate())
            .collect::<Result<Vec<_>>>()?;
        ScalarValue::iter_to_array(answers)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut columns: Vec<Vec<ScalarValue>> = Vec::new();
        for mut group in self.take(emit_to)? {
            let state = group.digest.state()?;
            columns.resize_with(state.len(), Vec::new);
            for (column, value) in columns.iter_mut().zip(state) {
                column.push(value);
            }
        }
        if columns.is_empty() {
            return Self::new_group(self.settings)
                .digest
                .state()?
                .into_iter()
                .map(|value| value.to_array_of_size(0))
                .collect();
        }
        columns
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect()
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.make_room(total_num_groups);
        for (row, &group) in group_indices.iter().enumerate() {
            let state: Vec<ArrayRef> = values.iter().map(|column| column.slice(row, 1)).collect();
            self.groups[group].digest.merge_batch(&state)?;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own group, as DataFusion asks when grouping barely reduces the rows.
        let mut single = Digests::new(self.settings);
        let rows: Vec<usize> = (0..values[0].len()).collect();
        single.update_batch(values, &rows, opt_filter, rows.len())?;
        single.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        // Asked once a batch, so estimated from one digest: they all fill up alike.
        let digest = self.groups.first().map_or(0, |group| group.digest.size());
        self.groups.capacity() * (size_of::<Group>() + digest) + self.waiting * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::{Field, Schema};
    use deltalake::arrow::record_batch::RecordBatch;
    use deltalake::datafusion::datasource::MemTable;
    use deltalake::datafusion::prelude::SessionConfig;

    /// Ten groups of 8 000 values each over two partitions (each group's values reach its
    /// digest in several merges, and the partitions' digests meet in the final phase), every
    /// 97th value null.
    fn table() -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let batch = |from: i64| {
            let rows = from..from + 8_000;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i % 10))),
                    Arc::new(Float64Array::from_iter(
                        rows.map(|i| (i % 97 != 0).then_some(((i * 7_919) % 10_007) as f64)),
                    )),
                ],
            )
            .unwrap()
        };
        let partitions = (0..2)
            .map(|p| (0..5).map(|b| batch((p * 5 + b) * 8_000)).collect())
            .collect();
        MemTable::try_new(schema, partitions).unwrap()
    }

    #[tokio::test]
    async fn grouped_answers_are_within_the_digests_error_of_the_exact_percentiles() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        gather_percentile_values(&ctx);
        ctx.register_table("t", Arc::new(table())).unwrap();
        let answers = ctx
            .sql(
                "SELECT g, \
                   approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY v), \
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY v), \
                   approx_percentile_cont(0.3, 50) WITHIN GROUP (ORDER BY v DESC) FILTER (WHERE v > 5000), \
                   percentile_cont(0.3) WITHIN GROUP (ORDER BY v DESC) FILTER (WHERE v > 5000) \
                 FROM t GROUP BY g ORDER BY g",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let answers = &answers[0];
        assert_eq!(answers.num_rows(), 10, "one row per group");
        let column = |c: usize| answers.column(c).as_primitive::<Float64Type>().clone();
        let (p99, exact_p99, p30_desc, exact_p30_desc) =
            (column(1), column(2), column(3), column(4));
        for group in 0..10 {
            assert!(
                (p99.value(group) - exact_p99.value(group)).abs() < 50.0,
                "group {group}: p99 {} against {}",
                p99.value(group),
                exact_p99.value(group)
            );
            assert!(
                (p30_desc.value(group) - exact_p30_desc.value(group)).abs() < 50.0,
                "group {group}: descending p30 above 5000 {} against {}",
                p30_desc.value(group),
                exact_p30_desc.value(group)
            );
        }
    }
}
