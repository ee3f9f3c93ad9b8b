//! The condition language of `successCondition` / `failureCondition`: a small, safe expression
//! language over `result` (tokenizer, recursive-descent parser, evaluator). No loops, no I/O,
//! no variables besides `result` and the `#` of a predicate: evaluation always terminates.
//!
//! Grammar (lowest precedence first):
//! ```text
//! or      := and (("||" | "or") and)*
//! and     := not (("&&" | "and") not)*
//! not     := ("!" | "not") not | cmp
//! cmp     := add (("<" | "<=" | ">" | ">=" | "==" | "!=") add)?
//! add     := mul (("+" | "-") mul)*
//! mul     := unary (("*" | "/") unary)*
//! unary   := "-" unary | postfix
//! postfix := primary ("[" INT "]")*
//! primary := NUMBER | "true" | "false" | "NaN" | "Inf" | "result" | "#" | "(" or ")"
//!          | FUNC "(" args ")"          FUNC: len isNaN isInf abs min max sum all any
//! pred    := "{" or "}"                 only as the 2nd argument of all / any
//! ```
//! A parse error carries its column; an evaluation error (index out of range, comparing a list
//! of several values with a number, a condition that is not a boolean) is an error, never `true`.

use std::fmt;

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr(Node);

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Num(f64),
    Bool(bool),
    Result,
    Item,
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Index(Box<Node>, usize),
    Call(Func, Vec<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Len,
    IsNaN,
    IsInf,
    Abs,
    Min,
    Max,
    Sum,
    All,
    Any,
}

impl Func {
    fn from_name(s: &str) -> Option<Func> {
        Some(match s {
            "len" => Func::Len,
            "isNaN" => Func::IsNaN,
            "isInf" => Func::IsInf,
            "abs" => Func::Abs,
            "min" => Func::Min,
            "max" => Func::Max,
            "sum" => Func::Sum,
            "all" => Func::All,
            "any" => Func::Any,
            _ => return None,
        })
    }
    fn takes_predicate(self) -> bool {
        matches!(self, Func::All | Func::Any)
    }
}

/// A condition that does not parse, with the 1-based column where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What was expected or found.
    pub message: String,
}

/// A condition that parsed but cannot be evaluated on this result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// The value of `result`: one number (a PromQL scalar, or a vector of one element is also
/// usable as a number) or the values of a vector.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// The values of a vector.
    List(Vec<f64>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(l) => {
                write!(f, "[")?;
                for (i, n) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{n}")?;
                }
                write!(f, "]")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Hash,
    Op(&'static str),
}

/// Conditions longer than this are refused (they are meant to be one line).
pub const MAX_LEN: usize = 1024;
/// Nesting deeper than this is refused, so the parser's recursion stays bounded.
const MAX_DEPTH: usize = 32;

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |i: usize, m: String| ParseError {
        column: i + 1,
        message: m,
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text
                .parse()
                .map_err(|_| err(start, format!("invalid number {text:?}")))?;
            out.push((Tok::Num(n), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), start));
            continue;
        }
        if c == '#' {
            out.push((Tok::Hash, start));
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = ["&&", "||", "<=", ">=", "==", "!="]
            .into_iter()
            .find(|o| *o == two)
            .or_else(|| {
                [
                    "<", ">", "!", "(", ")", "[", "]", "{", "}", ",", "+", "-", "*", "/",
                ]
                .into_iter()
                .find(|o| o.starts_with(c))
            });
        match op {
            Some(o) => {
                i += o.len();
                out.push((Tok::Op(o), start));
            }
            None if c == '=' => return Err(err(start, "use == to compare, not =".into())),
            None => return Err(err(start, format!("unexpected character {c:?}"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
    in_pred: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|(_, c)| *c).unwrap_or(self.end) + 1
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.col(),
            message: message.into(),
        })
    }
    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(Tok::Num(n)) => format!("{n}"),
            Some(Tok::Ident(s)) => format!("{s:?}"),
            Some(Tok::Hash) => "#".into(),
            Some(Tok::Op(o)) => format!("{o:?}"),
        }
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.err(format!("expected {op:?}, found {}", self.found()))
        }
    }
    fn nest<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("expression nested too deeply");
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Node, ParseError> {
        let mut l = self.and()?;
        while self.eat_op("||") || self.eat_word("or") {
            let r = self.and()?;
            l = Node::Bin(BinOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Node, ParseError> {
        let mut l = self.not()?;
        while self.eat_op("&&") || self.eat_word("and") {
            let r = self.not()?;
            l = Node::Bin(BinOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Node, ParseError> {
        if self.eat_op("!") || self.eat_word("not") {
            return self.nest(|p| Ok(Node::Not(Box::new(p.not()?))));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Node, ParseError> {
        let l = self.add()?;
        let op = match self.peek() {
            Some(Tok::Op("<")) => BinOp::Lt,
            Some(Tok::Op("<=")) => BinOp::Le,
            Some(Tok::Op(">")) => BinOp::Gt,
            Some(Tok::Op(">=")) => BinOp::Ge,
            Some(Tok::Op("==")) => BinOp::Eq,
            Some(Tok::Op("!=")) => BinOp::Ne,
            _ => return Ok(l),
        };
        self.pos += 1;
        let r = self.add()?;
        if matches!(
            self.peek(),
            Some(Tok::Op("<" | "<=" | ">" | ">=" | "==" | "!="))
        ) {
            return self.err("comparisons do not chain: use &&");
        }
        Ok(Node::Bin(op, Box::new(l), Box::new(r)))
    }
    fn add(&mut self) -> Result<Node, ParseError> {
        let mut l = self.mul()?;
        loop {
            let op = if self.eat_op("+") {
                BinOp::Add
            } else if self.eat_op("-") {
                BinOp::Sub
            } else {
                return Ok(l);
            };
            let r = self.mul()?;
            l = Node::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn mul(&mut self) -> Result<Node, ParseError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                BinOp::Mul
            } else if self.eat_op("/") {
                BinOp::Div
            } else {
                return Ok(l);
            };
            let r = self.unary()?;
            l = Node::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.eat_op("-") {
            return self.nest(|p| Ok(Node::Neg(Box::new(p.unary()?))));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut n = self.primary()?;
        while self.eat_op("[") {
            let idx = match self.peek() {
                Some(Tok::Num(v)) if v.fract() == 0.0 && *v >= 0.0 && *v < 1e6 => *v as usize,
                _ => {
                    return self.err(format!(
                        "expected an index (0, 1, …), found {}",
                        self.found()
                    ));
                }
            };
            self.pos += 1;
            self.expect_op("]")?;
            n = Node::Index(Box::new(n), idx);
        }
        Ok(n)
    }
    fn primary(&mut self) -> Result<Node, ParseError> {
        let col = self.col();
        let Some(tok) = self.peek().cloned() else {
            return self.err("unexpected end of the condition");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Node::Num(n)),
            Tok::Hash if self.in_pred > 0 => Ok(Node::Item),
            Tok::Hash => {
                self.pos -= 1;
                self.err("# is only defined inside the {…} predicate of all() or any()")
            }
            Tok::Op("(") => {
                let n = self.nest(|p| p.or())?;
                self.expect_op(")")?;
                Ok(n)
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => Ok(Node::Bool(true)),
                "false" => Ok(Node::Bool(false)),
                "NaN" => Ok(Node::Num(f64::NAN)),
                "Inf" => Ok(Node::Num(f64::INFINITY)),
                "result" => Ok(Node::Result),
                name => {
                    let Some(f) = Func::from_name(name) else {
                        self.pos -= 1;
                        return self.err(format!(
                            "unknown name {name:?}: only result, numbers, true/false and the functions len, isNaN, isInf, abs, min, max, sum, all, any"
                        ));
                    };
                    self.expect_op("(")?;
                    let args = self.nest(|p| p.args(f))?;
                    let want = if f.takes_predicate() { 2 } else { 1 };
                    if args.len() != want {
                        return Err(ParseError {
                            column: col,
                            message: format!(
                                "{name}() takes {want} argument(s), got {}",
                                args.len()
                            ),
                        });
                    }
                    Ok(Node::Call(f, args))
                }
            },
            Tok::Op(o) => {
                self.pos -= 1;
                self.err(format!("unexpected {o:?}"))
            }
        }
    }
    fn args(&mut self, f: Func) -> Result<Vec<Node>, ParseError> {
        let mut args = Vec::new();
        if self.eat_op(")") {
            return Ok(args);
        }
        loop {
            if args.len() == 1 && f.takes_predicate() {
                self.expect_op("{")?;
                self.in_pred += 1;
                let body = self.or();
                self.in_pred -= 1;
                args.push(body?);
                self.expect_op("}")?;
            } else {
                args.push(self.or()?);
            }
            if self.eat_op(")") {
                return Ok(args);
            }
            self.expect_op(",")?;
        }
    }
}

impl Expr {
    /// Parses a condition.
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        if src.len() > MAX_LEN {
            return Err(ParseError {
                column: MAX_LEN,
                message: format!("condition longer than {MAX_LEN} characters"),
            });
        }
        let toks = tokenize(src)?;
        let mut p = Parser {
            end: src.chars().count(),
            toks,
            pos: 0,
            depth: 0,
            in_pred: 0,
        };
        if p.peek().is_none() {
            return p.err("the condition is empty");
        }
        let n = p.or()?;
        if p.peek().is_some() {
            return p.err(format!("unexpected {} after the condition", p.found()));
        }
        Ok(Expr(n))
    }

    /// Evaluates to a value.
    pub fn eval(&self, result: &Value) -> Result<Value, EvalError> {
        eval(&self.0, result, None)
    }

    /// Evaluates as a condition: a boolean, else an error.
    pub fn holds(&self, result: &Value) -> Result<bool, EvalError> {
        match self.eval(result)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "the condition gives {other}, not true or false"
            ))),
        }
    }
}

fn num(v: Value, what: &str) -> Result<f64, EvalError> {
    match v {
        Value::Num(n) => Ok(n),
        Value::List(l) if l.len() == 1 => Ok(l[0]),
        Value::List(l) => Err(EvalError(format!(
            "{what} has {} values {}: pick one with result[i], or use all(), any(), min(), max(), sum()",
            l.len(),
            Value::List(l.clone())
        ))),
        Value::Bool(b) => Err(EvalError(format!("{what} is {b}, not a number"))),
    }
}

fn boolean(v: Value, what: &str) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(EvalError(format!("{what} is {other}, not true or false"))),
    }
}

fn list(v: Value) -> Result<Vec<f64>, EvalError> {
    match v {
        Value::List(l) => Ok(l),
        Value::Num(n) => Ok(vec![n]),
        Value::Bool(b) => Err(EvalError(format!("{b} is not a list of values"))),
    }
}

fn eval(n: &Node, result: &Value, item: Option<f64>) -> Result<Value, EvalError> {
    Ok(match n {
        Node::Num(v) => Value::Num(*v),
        Node::Bool(b) => Value::Bool(*b),
        Node::Result => result.clone(),
        Node::Item => Value::Num(item.ok_or_else(|| EvalError("# outside a predicate".into()))?),
        Node::Not(x) => Value::Bool(!boolean(eval(x, result, item)?, "the operand of !")?),
        Node::Neg(x) => Value::Num(-num(eval(x, result, item)?, "the operand of -")?),
        Node::Index(x, i) => {
            let l = list(eval(x, result, item)?)?;
            Value::Num(*l.get(*i).ok_or_else(|| {
                EvalError(format!(
                    "index [{i}] is out of range: the result has {} value(s)",
                    l.len()
                ))
            })?)
        }
        Node::Bin(BinOp::Or, l, r) => Value::Bool(
            boolean(eval(l, result, item)?, "the left side of ||")?
                || boolean(eval(r, result, item)?, "the right side of ||")?,
        ),
        Node::Bin(BinOp::And, l, r) => Value::Bool(
            boolean(eval(l, result, item)?, "the left side of &&")?
                && boolean(eval(r, result, item)?, "the right side of &&")?,
        ),
        Node::Bin(op, l, r) => {
            let (lv, rv) = (eval(l, result, item)?, eval(r, result, item)?);
            if let (BinOp::Eq | BinOp::Ne, Value::Bool(a), Value::Bool(b)) = (op, &lv, &rv) {
                return Ok(Value::Bool((a == b) == (*op == BinOp::Eq)));
            }
            let a = num(lv, "the left side")?;
            let b = num(rv, "the right side")?;
            match op {
                BinOp::Lt => Value::Bool(a < b),
                BinOp::Le => Value::Bool(a <= b),
                BinOp::Gt => Value::Bool(a > b),
                BinOp::Ge => Value::Bool(a >= b),
                BinOp::Eq => Value::Bool(a == b),
                BinOp::Ne => Value::Bool(a != b),
                BinOp::Add => Value::Num(a + b),
                BinOp::Sub => Value::Num(a - b),
                BinOp::Mul => Value::Num(a * b),
                BinOp::Div => Value::Num(a / b),
                BinOp::Or | BinOp::And => unreachable!("handled above"),
            }
        }
        Node::Call(f, args) => {
            let first = eval(&args[0], result, item)?;
            match f {
                Func::Len => Value::Num(list(first)?.len() as f64),
                Func::IsNaN => Value::Bool(num(first, "the argument of isNaN")?.is_nan()),
                Func::IsInf => Value::Bool(num(first, "the argument of isInf")?.is_infinite()),
                Func::Abs => Value::Num(num(first, "the argument of abs")?.abs()),
                Func::Sum => Value::Num(list(first)?.iter().sum()),
                Func::Min | Func::Max => {
                    let l = list(first)?;
                    if l.is_empty() {
                        return Err(EvalError("min()/max() of no values".into()));
                    }
                    let pick = if *f == Func::Min { f64::min } else { f64::max };
                    Value::Num(l[1..].iter().fold(l[0], |a, b| pick(a, *b)))
                }
                Func::All | Func::Any => {
                    let mut acc = *f == Func::All;
                    for v in list(first)? {
                        let b = boolean(eval(&args[1], result, Some(v))?, "the predicate")?;
                        if *f == Func::All {
                            acc &= b;
                        } else {
                            acc |= b;
                        }
                    }
                    Value::Bool(acc)
                }
            }
        }
    })
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
