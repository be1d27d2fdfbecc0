//! Functions that build values far larger than their arguments (`repeat('x', 1000000000)`,
//! `lpad`, `range(1, 10000000000)`, `array_repeat`, `replace` with a long replacement)
//! allocate outside the query memory pool, in one go: one call could ask for gigabytes before
//! any limit looked. Each is registered again behind a check that computes, from its
//! arguments, how many bytes it would build for the batch at hand, and refuses past a budget
//! before anything is allocated.

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use deltalake::arrow::compute::{cast_with_options, CastOptions};
use deltalake::arrow::datatypes::{
    DataType, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use deltalake::datafusion::common::{plan_err, Result};
use deltalake::datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use deltalake::datafusion::prelude::SessionContext;
use std::sync::Arc;

/// The most bytes one call of a value-building function may build for one batch.
pub const MAX_BUILT_BYTES: u64 = 64 * 1024 * 1024;

/// How many bytes a function would build from these arguments (one array per argument, a
/// value per row).
type Estimate = fn(&[ArrayRef]) -> Result<u64>;

/// The functions that build values, by name, with how to tell what they would build.
const BUILDERS: [(&str, Estimate); 9] = [
    ("repeat", repeated),
    ("lpad", padded),
    ("rpad", padded),
    ("replace", replaced),
    ("regexp_replace", replaced),
    ("range", series),
    ("generate_series", series),
    ("array_repeat", repeated_elements),
    ("array_resize", resized),
];

/// Puts every value-building function of `ctx` behind its check.
pub fn bound_value_builders(ctx: &SessionContext) {
    let registered = ctx.state().scalar_functions().clone();
    for (name, estimate) in BUILDERS {
        if let Some(inner) = registered.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                estimate: EstimateFn(estimate),
            }));
        }
    }
}

/// A function pointer compared and hashed by address, as DataFusion asks of a function.
#[derive(Clone, Copy)]
struct EstimateFn(Estimate);

impl std::fmt::Debug for EstimateFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EstimateFn")
    }
}

impl PartialEq for EstimateFn {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for EstimateFn {}

impl std::hash::Hash for EstimateFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.0 as usize).hash(state);
    }
}

/// A value-building function behind its check; everything else is the function's own.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    estimate: EstimateFn,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = args
            .args
            .iter()
            .map(|arg| arg.to_array(args.number_rows))
            .collect::<Result<Vec<_>>>()?;
        let bytes = (self.estimate.0)(&arrays)?;
        if bytes > MAX_BUILT_BYTES {
            return plan_err!(
                "{}() would build {} MiB for {} rows; a function may build at most {} MiB at once",
                self.name(),
                bytes / (1024 * 1024),
                args.number_rows,
                MAX_BUILT_BYTES / (1024 * 1024)
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The argument as 64-bit integers; null where it is null or does not fit.
fn integers(array: &ArrayRef) -> Result<Int64Array> {
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    Ok(cast_with_options(array, &DataType::Int64, &safe)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// The argument's byte length in each row, as text (0 where null).
fn text_lengths(array: &ArrayRef) -> Result<Vec<u64>> {
    let text = cast_with_options(array, &DataType::LargeUtf8, &CastOptions::default())?;
    let text = text.as_string::<i64>();
    Ok((0..text.len())
        .map(|row| match text.is_null(row) {
            true => 0,
            false => text.value(row).len() as u64,
        })
        .collect())
}

/// A non-negative count from an integer argument (null and negative build nothing).
fn count(values: &Int64Array, row: usize) -> u64 {
    match values.is_null(row) {
        true => 0,
        false => values.value(row).max(0) as u64,
    }
}

fn sum(per_row: impl Iterator<Item = u64>) -> u64 {
    per_row.fold(0, u64::saturating_add)
}

/// `repeat(text, n)`: the text n times.
fn repeated(args: &[ArrayRef]) -> Result<u64> {
    let (lengths, times) = (text_lengths(&args[0])?, integers(&args[1])?);
    Ok(sum(lengths.iter().enumerate().map(|(row, length)| {
        length.saturating_mul(count(&times, row))
    })))
}

/// `lpad(text, n [, fill])`: n characters of up to 4 bytes.
fn padded(args: &[ArrayRef]) -> Result<u64> {
    let width = integers(&args[1])?;
    Ok(sum(
        (0..width.len()).map(|row| count(&width, row).saturating_mul(4))
    ))
}

/// `replace(text, from, to)`: at worst `to` between every two characters.
fn replaced(args: &[ArrayRef]) -> Result<u64> {
    let (text, from, to) = (
        text_lengths(&args[0])?,
        text_lengths(&args[1])?,
        text_lengths(&args[2])?,
    );
    Ok(sum((0..text.len()).map(|row| {
        let matches = text[row] / from[row].max(1) + 1;
        text[row].saturating_add(matches.saturating_mul(to[row]))
    })))
}

/// `array_repeat(element, n)`: n copies of the element.
fn repeated_elements(args: &[ArrayRef]) -> Result<u64> {
    let element = bytes_per_row(&args[0]);
    let times = integers(&args[1])?;
    Ok(sum(
        (0..times.len()).map(|row| count(&times, row).saturating_mul(element))
    ))
}

/// `array_resize(list, n [, value])`: n elements.
fn resized(args: &[ArrayRef]) -> Result<u64> {
    let size = integers(&args[1])?;
    Ok(sum(
        (0..size.len()).map(|row| count(&size, row).saturating_mul(8))
    ))
}

/// What one row of the argument holds, on average; at least a machine word.
fn bytes_per_row(array: &ArrayRef) -> u64 {
    (array.get_array_memory_size() / array.len().max(1)).max(8) as u64
}

/// `range(stop)`, `range(start, stop [, step])` and `generate_series`: integers, dates or
/// timestamps with an interval step, 8 bytes each.
fn series(args: &[ArrayRef]) -> Result<u64> {
    let temporal = args[0].data_type().is_temporal();
    let positions = |array: &ArrayRef| match temporal {
        true => integers(&cast_with_options(
            array,
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            &CastOptions::default(),
        )?),
        false => integers(array),
    };
    let rows = args[0].len();
    let (start, stop) = match args {
        [stop] => (Int64Array::from(vec![0; rows]), integers(stop)?),
        [start, stop, ..] => (positions(start)?, positions(stop)?),
        [] => return Ok(0),
    };
    let step: Vec<Option<i128>> = match (args.get(2), temporal) {
        (None, false) => vec![Some(1); rows],
        (None, true) => vec![Some(86_400_000_000_000); rows],
        (Some(step), false) => {
            let step = integers(step)?;
            (0..rows)
                .map(|row| (!step.is_null(row)).then(|| i128::from(step.value(row))))
                .collect()
        }
        (Some(step), true) => interval_nanos(step)?,
    };
    Ok(sum((0..rows).map(|row| {
        if start.is_null(row) || stop.is_null(row) {
            return 0;
        }
        let span = i128::from(stop.value(row)) - i128::from(start.value(row));
        let elements = match step[row] {
            Some(step) if step != 0 && span.signum() == step.signum() => span / step + 1,
            _ => 0,
        };
        u64::try_from(elements.saturating_mul(8)).unwrap_or(u64::MAX)
    })))
}

/// An interval step in nanoseconds, a month counted as 30 days.
fn interval_nanos(step: &ArrayRef) -> Result<Vec<Option<i128>>> {
    let step = cast_with_options(
        step,
        &DataType::Interval(IntervalUnit::MonthDayNano),
        &CastOptions::default(),
    )?;
    let step = step.as_primitive::<IntervalMonthDayNanoType>();
    const DAY: i128 = 86_400_000_000_000;
    Ok((0..step.len())
        .map(|row| {
            (!step.is_null(row)).then(|| {
                let interval = step.value(row);
                (i128::from(interval.months) * 30 + i128::from(interval.days)) * DAY
                    + i128::from(interval.nanoseconds)
            })
        })
        .collect())
}
