//! The operator table: every eagerly evaluated expression operator, once,
//! with its name, how its arguments are written (which fixes its arity) and
//! its evaluator. Parsing looks a name up here ([`Op::lookup`]) and keeps the
//! [`Op`]; evaluation dispatches on it and never compares names.

use super::{arith, array, comparison, convert, date_ops, fold, object, set, string, Res, Val};

/// How an operator's arguments are written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Args {
    /// A list (or one bare argument) of `min` to `max` expressions.
    List(usize, usize),
    /// A document of named arguments, `(name, required)`, evaluated into
    /// positions in this order; an absent optional argument is missing.
    Named(&'static [(&'static str, bool)]),
    /// A document of named arguments with its own rule in `parse`
    /// (`$regexMatch`, `$trim`, `$getField`, `$convert`).
    Own,
}

const ANY: Args = Args::List(0, usize::MAX);
const ONE: Args = Args::List(1, 1);
const TWO: Args = Args::List(2, 2);

const DATE_ARITH: Args = Args::Named(&[
    ("startDate", true),
    ("unit", true),
    ("amount", true),
    ("timezone", false),
]);
const N_OF: Args = Args::Named(&[("n", true), ("input", true)]);
const REPLACE: Args = Args::Named(&[("input", true), ("find", true), ("replacement", true)]);

macro_rules! operators {
    ($($op:ident $name:literal $args:expr, $eval:path;)*) => {
        /// An eagerly evaluated expression operator (its arguments are
        /// evaluated before it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Op {
            $(
                #[doc = concat!("`", $name, "`.")]
                $op,
            )*
        }

        impl Op {
            /// The operator called `name` (with its `$`), if there is one.
            pub(super) fn lookup(name: &str) -> Option<Op> {
                Some(match name {
                    $($name => Op::$op,)*
                    _ => return None,
                })
            }

            /// The operator's name, `$` included.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Op::$op => $name,)*
                }
            }

            /// How its arguments are written.
            pub(super) fn args(self) -> Args {
                match self {
                    $(Op::$op => $args,)*
                }
            }

            /// Evaluates the operator on its evaluated arguments.
            pub(super) fn apply(self, args: &[Val]) -> Res {
                match self {
                    $(Op::$op => $eval(self, args),)*
                }
            }
        }
    };
}

operators! {
    // Arithmetic.
    Add "$add" ANY, arith::add;
    Subtract "$subtract" TWO, arith::subtract;
    Multiply "$multiply" ANY, arith::multiply;
    Divide "$divide" TWO, arith::divide;
    Mod "$mod" TWO, arith::divide;
    Abs "$abs" ONE, arith::unary;
    Ceil "$ceil" ONE, arith::unary;
    Floor "$floor" ONE, arith::unary;
    Sqrt "$sqrt" ONE, arith::unary;
    Exp "$exp" ONE, arith::unary;
    Ln "$ln" ONE, arith::unary;
    Log10 "$log10" ONE, arith::unary;
    Pow "$pow" TWO, arith::pow;
    Log "$log" TWO, arith::pow;
    Round "$round" Args::List(1, 2), arith::round;
    Trunc "$trunc" Args::List(1, 2), arith::round;
    // Comparison and boolean.
    Eq "$eq" TWO, comparison::compare;
    Ne "$ne" TWO, comparison::compare;
    Gt "$gt" TWO, comparison::compare;
    Gte "$gte" TWO, comparison::compare;
    Lt "$lt" TWO, comparison::compare;
    Lte "$lte" TWO, comparison::compare;
    Cmp "$cmp" TWO, comparison::compare;
    Not "$not" ONE, comparison::not;
    // Strings.
    Concat "$concat" ANY, string::concat;
    ToUpper "$toUpper" ONE, string::change_case;
    ToLower "$toLower" ONE, string::change_case;
    StrLenCP "$strLenCP" ONE, string::length;
    StrLenBytes "$strLenBytes" ONE, string::length;
    SubstrCP "$substrCP" Args::List(3, 3), string::substr;
    Substr "$substr" Args::List(3, 3), string::substr;
    SubstrBytes "$substrBytes" Args::List(3, 3), string::substr;
    Split "$split" TWO, string::split;
    Strcasecmp "$strcasecmp" TWO, string::strcasecmp;
    Trim "$trim" Args::Own, string::trim;
    Ltrim "$ltrim" Args::Own, string::trim;
    Rtrim "$rtrim" Args::Own, string::trim;
    IndexOfCP "$indexOfCP" Args::List(2, 4), string::index_of;
    IndexOfBytes "$indexOfBytes" Args::List(2, 4), string::index_of;
    RegexMatch "$regexMatch" Args::Own, string::regex;
    RegexFind "$regexFind" Args::Own, string::regex;
    RegexFindAll "$regexFindAll" Args::Own, string::regex;
    ReplaceOne "$replaceOne" REPLACE, string::replace;
    ReplaceAll "$replaceAll" REPLACE, string::replace;
    // Arrays.
    Size "$size" ONE, array::size;
    IsArray "$isArray" ONE, array::is_array;
    ArrayElemAt "$arrayElemAt" TWO, array::elem_at;
    First "$first" ONE, array::first_last;
    Last "$last" ONE, array::first_last;
    ConcatArrays "$concatArrays" ANY, array::concat;
    ReverseArray "$reverseArray" ONE, array::reverse;
    In "$in" TWO, array::contains;
    IndexOfArray "$indexOfArray" Args::List(2, 4), array::index_of;
    Slice "$slice" Args::List(2, 3), array::slice;
    Range "$range" Args::List(2, 3), array::range;
    AllElementsTrue "$allElementsTrue" ONE, array::all_any;
    AnyElementTrue "$anyElementTrue" ONE, array::all_any;
    SortArray "$sortArray" Args::Named(&[("input", true), ("sortBy", true)]), array::sort;
    Zip "$zip" Args::Named(&[("inputs", true), ("useLongestLength", false), ("defaults", false)]), array::zip;
    FirstN "$firstN" N_OF, array::n_of;
    LastN "$lastN" N_OF, array::n_of;
    MaxN "$maxN" N_OF, array::n_of;
    MinN "$minN" N_OF, array::n_of;
    // Sets.
    SetUnion "$setUnion" ANY, set::apply;
    SetIntersection "$setIntersection" ANY, set::apply;
    SetEquals "$setEquals" ANY, set::apply;
    SetDifference "$setDifference" TWO, set::apply;
    SetIsSubset "$setIsSubset" TWO, set::apply;
    // Objects.
    MergeObjects "$mergeObjects" ANY, object::merge;
    ObjectToArray "$objectToArray" ONE, object::to_array;
    ArrayToObject "$arrayToObject" ONE, object::from_array;
    GetField "$getField" Args::Own, object::get_field;
    SetField "$setField" Args::Named(&[("field", true), ("input", true), ("value", true)]), object::set_field;
    UnsetField "$unsetField" Args::Named(&[("field", true), ("input", true)]), object::set_field;
    // Folds over a list (the accumulators used as expressions).
    Max "$max" ANY, fold::apply;
    Min "$min" ANY, fold::apply;
    Sum "$sum" ANY, fold::apply;
    Avg "$avg" ANY, fold::apply;
    StdDevPop "$stdDevPop" ANY, fold::apply;
    StdDevSamp "$stdDevSamp" ANY, fold::apply;
    // Types and conversion.
    Type "$type" ONE, convert::type_of;
    IsNumber "$isNumber" ONE, convert::is_number;
    ToString "$toString" ONE, convert::to_type;
    ToInt "$toInt" ONE, convert::to_type;
    ToLong "$toLong" ONE, convert::to_type;
    ToDouble "$toDouble" ONE, convert::to_type;
    ToBool "$toBool" ONE, convert::to_type;
    ToDecimal "$toDecimal" ONE, convert::to_type;
    ToObjectId "$toObjectId" ONE, convert::to_type;
    ToDate "$toDate" ONE, convert::to_type;
    Convert "$convert" Args::Own, convert::convert_op;
    // Dates.
    DateAdd "$dateAdd" DATE_ARITH, date_ops::add;
    DateSubtract "$dateSubtract" DATE_ARITH, date_ops::add;
    DateDiff "$dateDiff" Args::Named(&[
        ("startDate", true),
        ("endDate", true),
        ("unit", true),
        ("timezone", false),
        ("startOfWeek", false),
    ]), date_ops::diff;
    DateTrunc "$dateTrunc" Args::Named(&[
        ("date", true),
        ("unit", true),
        ("binSize", false),
        ("timezone", false),
        ("startOfWeek", false),
    ]), date_ops::trunc;
    DateFromParts "$dateFromParts" Args::Named(&[
        ("year", false),
        ("month", false),
        ("day", false),
        ("hour", false),
        ("minute", false),
        ("second", false),
        ("millisecond", false),
        ("timezone", false),
    ]), date_ops::from_parts;
    DateFromString "$dateFromString" Args::Named(&[
        ("dateString", true),
        ("format", false),
        ("timezone", false),
        ("onError", false),
        ("onNull", false),
    ]), date_ops::from_string;
    DateToParts "$dateToParts" Args::Named(&[("date", true), ("timezone", false), ("iso8601", false)]), date_ops::to_parts;
}
