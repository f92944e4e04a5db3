package validators

import (
	"github.com/tidwall/gjson"

	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// DirectiveFilter is the directive name webhook_filter errors carry.
const DirectiveFilter = "webhook_filter"

// Bounds on one evaluation of a filter. The expression is trusted (it is
// config), but the data it walks is the sender's: a comprehension over a
// large JSON array, nested in another, could otherwise take minutes per
// request. Outside comprehensions, the work of an expression is linear in
// the body, which max_body caps; inside them it is bounded in wall-clock
// time, checked every filterInterruptEvery iterations. An evaluation cut
// short counts as "no match".
//
// CEL's runtime cost limit (cel.CostLimit) is deliberately not used: in
// cel-go v0.32 its tracker makes comprehensions quadratic (an exists() over
// 20,000 items takes 1.1s with it, 5ms without), so it would hand a hostile
// sender the very CPU burn it is meant to prevent.
const (
	// DefaultFilterTimeout is the wall-clock bound of one evaluation, body
	// decoding included: a 25 MiB JSON body decodes in a few hundred ms.
	// Ordinary filters take microseconds; a linear walk over 20,000 array
	// items takes about 5ms.
	DefaultFilterTimeout = time.Second
	// filterInterruptEvery is how many comprehension iterations run
	// between checks of the timeout.
	filterInterruptEvery = 100
)

// The variables a filter expression sees (README.md, "webhook_filter").
const (
	filterVarBody    = "body"
	filterVarRaw     = "raw"
	filterVarHeaders = "headers"
	filterVarQuery   = "query"
	filterVarMethod  = "method"
	filterVarPath    = "path"
	filterVarJWT     = "jwt"
)

// filterEnv is the CEL environment every filter compiles in. Building it is
// the expensive part of a compile, and an Env is safe for concurrent use.
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(filterVarBody, cel.DynType),
		cel.Variable(filterVarRaw, cel.StringType),
		cel.Variable(filterVarHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(filterVarQuery, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(filterVarMethod, cel.StringType),
		cel.Variable(filterVarPath, cel.StringType),
		cel.Variable(filterVarJWT, cel.MapType(cel.StringType, cel.DynType)),
		// JSON numbers are doubles; let `body.count > 3` compare them
		// with integer literals as users write them.
		cel.CrossTypeNumericComparisons(true),
		// body.?field.orValue("") for optional fields, lowerAscii(),
		// split() and friends for names and refs.
		cel.OptionalTypes(),
		ext.Strings(),
	)
})

// Filter is the webhook_filter condition: a CEL expression over the request
// that decides whether it launches anything. Match reports false for a
// request the expression does not select, including one it cannot be
// evaluated on (a missing field): that is "no match", never a server error.
//
// Set the fields, call Validate once, then call Match from any number of
// goroutines (a compiled CEL program is safe for concurrent use). Fields
// must not change after Validate.
type Filter struct {
	// Expression is the CEL source, e.g.
	// body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push".
	Expression string
	// Timeout overrides DefaultFilterTimeout (0 = default).
	Timeout time.Duration

	prg cel.Program
	// bodyPaths are the static field paths the expression reads from
	// `body` (body.a.b → [a b]); nil when it uses `body` in any other way
	// (whole, indexed, iterated by name), which needs the full decode.
	bodyPaths [][]string
	// bodyKeys are bodyPaths with every key escaped for gjson once.
	bodyKeys [][]string
	// firstNames are the distinct first names of bodyPaths, and
	// firstOf[i] the index in firstNames of bodyPaths[i]'s: the members
	// the hostile-JSON scan locates while it validates the body.
	firstNames []string
	firstOf    []int
	// headerNames and queryNames are the only names the expression looks
	// up in `headers` and `query` by literal (headers["X-Github-Event"]),
	// so that a request binds just those; nil when it uses the map in any
	// other way (size, iteration, a computed key), which binds them all.
	headerNames, queryNames []string
	// loops is set when the expression has a comprehension (exists, all,
	// map, filter...): the only place the evaluation can run long, and
	// the only place CEL checks the timeout.
	loops bool
}

// Validate compiles and type-checks the expression. The result must be a
// bool (or dyn, such as `body.enabled`, which is checked per request).
// Errors carry CEL's own message, which points at the offending column.
func (f *Filter) Validate() error {
	if strings.TrimSpace(f.Expression) == "" {
		return fmt.Errorf("%s: no expression: write one such as `body.action == \"opened\"`", DirectiveFilter)
	}
	env, err := filterEnv()
	if err != nil {
		return fmt.Errorf("%s: building the CEL environment: %v", DirectiveFilter, err)
	}
	checked, iss := env.Compile(f.Expression)
	if iss != nil && iss.Err() != nil {
		return fmt.Errorf("%s: expression does not compile:\n%v", DirectiveFilter, iss.Err())
	}
	if out := checked.OutputType(); !out.IsExactType(types.BoolType) && !out.IsExactType(types.DynType) {
		return fmt.Errorf("%s: the expression gives %s, not a bool: compare it, e.g. `body.action == \"opened\"` or `has(body.ref)`", DirectiveFilter, out)
	}
	if err := checkHeaderNames(checked.NativeRep()); err != nil {
		return err
	}
	prg, err := env.Program(checked,
		cel.InterruptCheckFrequency(filterInterruptEvery),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return fmt.Errorf("%s: preparing the expression: %v", DirectiveFilter, err)
	}
	f.prg = prg
	a := checked.NativeRep()
	f.bodyPaths = staticBodyPaths(a)
	f.bodyKeys, f.firstNames, f.firstOf = nil, nil, nil
	for _, path := range f.bodyPaths {
		i := slices.Index(f.firstNames, path[0])
		if i < 0 {
			i = len(f.firstNames)
			f.firstNames = append(f.firstNames, path[0])
		}
		f.firstOf = append(f.firstOf, i)
		keys := make([]string, len(path))
		for i, k := range path {
			keys[i] = gjson.Escape(k)
		}
		f.bodyKeys = append(f.bodyKeys, keys)
	}
	f.headerNames = staticMapKeys(a, filterVarHeaders)
	f.queryNames = staticMapKeys(a, filterVarQuery)
	f.loops = len(ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.ComprehensionKind))) > 0
	return nil
}

// staticMapKeys returns the names the expression looks up in the map
// variable name, when every use of it is a lookup by a literal string
// (m["k"], m[?"k"], "k" in m, m.k, has(m.k)); else nil. A map holding only
// those names gives every such lookup the answer the full map would.
func staticMapKeys(a *ast.AST, name string) []string {
	keys := []string{}
	for _, e := range ast.MatchDescendants(ast.NavigateAST(a), ast.AllMatcher()) {
		switch e.Kind() {
		case ast.ComprehensionKind:
			c := e.AsComprehension()
			if c.IterVar() == name || c.AccuVar() == name || c.IterVar2() == name {
				return nil // a macro variable shadows it
			}
		case ast.IdentKind:
			if e.AsIdent() != name {
				continue
			}
			key, ok := literalLookup(e)
			if !ok {
				return nil
			}
			if !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

// literalLookup returns the literal key that the identifier e is looked up
// by in its parent expression, if that is all the parent does with it.
func literalLookup(e ast.NavigableExpr) (string, bool) {
	parent, ok := e.Parent()
	if !ok {
		return "", false
	}
	literal := func(x ast.Expr) (string, bool) {
		if x.Kind() != ast.LiteralKind {
			return "", false
		}
		s, ok := x.AsLiteral().(types.String)
		return string(s), ok
	}
	switch parent.Kind() {
	case ast.SelectKind:
		if parent.AsSelect().Operand().ID() == e.ID() {
			return parent.AsSelect().FieldName(), true
		}
	case ast.CallKind:
		call := parent.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || len(args) != 2 {
			return "", false
		}
		switch call.FunctionName() {
		case operators.Index, operators.OptIndex:
			if args[0].ID() == e.ID() {
				return literal(args[1])
			}
		case operators.In:
			if args[1].ID() == e.ID() {
				return literal(args[0])
			}
		}
	}
	return "", false
}

// staticBodyPaths returns the field paths the expression reads from body
// when every use of body is a chain of field selections (body.ref,
// body.head_commit.id, has(body.x), body.items.exists(...)), so that
// evaluation can extract just those subtrees from the raw JSON instead of
// decoding the whole body: on a 1 MiB push event the full decode was most
// of the filter's cost. Any other use returns nil (decode everything).
func staticBodyPaths(a *ast.AST) [][]string {
	var paths [][]string
	for _, e := range ast.MatchDescendants(ast.NavigateAST(a), ast.AllMatcher()) {
		switch e.Kind() {
		case ast.ComprehensionKind:
			c := e.AsComprehension()
			if c.IterVar() == filterVarBody || c.AccuVar() == filterVarBody || c.IterVar2() == filterVarBody {
				return nil // a macro variable shadows body
			}
		case ast.IdentKind:
			if e.AsIdent() != filterVarBody {
				continue
			}
			var path []string
			cur := e
			for {
				parent, ok := cur.Parent()
				if !ok || parent.Kind() != ast.SelectKind || parent.AsSelect().Operand().ID() != cur.ID() {
					break
				}
				path = append(path, parent.AsSelect().FieldName())
				cur = parent
			}
			if len(path) == 0 {
				return nil // body itself: needs the whole value
			}
			paths = append(paths, path)
		}
	}
	if paths == nil {
		paths = [][]string{} // body unused: nothing to extract
	}
	return paths
}

// checkHeaderNames rejects a header looked up by a name in a form it never
// has: `headers` holds canonical names (X-Github-Event), so
// headers["X-GitHub-Event"] would silently never match.
func checkHeaderNames(a *ast.AST) error {
	isHeaders := func(e ast.Expr) bool {
		return e.Kind() == ast.IdentKind && e.AsIdent() == filterVarHeaders
	}
	check := func(name string) error {
		if canon := http.CanonicalHeaderKey(name); canon != name {
			return fmt.Errorf("%s: header %q is never found: headers holds canonical names, write %q", DirectiveFilter, name, canon)
		}
		return nil
	}
	for _, e := range ast.MatchDescendants(ast.NavigateAST(a), ast.AllMatcher()) {
		switch e.Kind() {
		case ast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if len(args) != 2 {
				continue
			}
			var key ast.Expr
			switch call.FunctionName() {
			case operators.Index, operators.OptIndex:
				if isHeaders(args[0]) {
					key = args[1]
				}
			case operators.In:
				if isHeaders(args[1]) {
					key = args[0]
				}
			}
			if key == nil || key.Kind() != ast.LiteralKind {
				continue
			}
			if s, ok := key.AsLiteral().(types.String); ok {
				if err := check(string(s)); err != nil {
					return err
				}
			}
		case ast.SelectKind:
			sel := e.AsSelect()
			if isHeaders(sel.Operand()) {
				if err := check(sel.FieldName()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// errNotBool is the evaluation error of a dyn expression that gave
// something other than a bool for this request.
var errNotBool = errors.New("the expression did not give a bool")

// Match evaluates the filter on r. matched is true only when the expression
// gives true; evalErr explains a false that came from an evaluation error
// (missing field, wrong type, timeout) and is meant for debug logs. It
// never panics on any input.
func (f *Filter) Match(ctx context.Context, r *Request) (matched bool, evalErr error) {
	if f.prg == nil {
		return false, Reject(DirectiveFilter, reasonMisconfigured)
	}
	vars := filterVarsPool.Get().(*filterVars)
	vars.f, vars.r = f, r
	defer vars.release()
	var out ref.Val
	var err error
	if f.loops {
		timeout := f.Timeout
		if timeout <= 0 {
			timeout = DefaultFilterTimeout
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, _, err = f.prg.ContextEval(ctx, vars)
	} else {
		// Without a comprehension CEL never checks the context: the work
		// is linear in the expression and the body, and no timer is armed.
		out, _, err = f.prg.Eval(vars)
	}
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%w (got %s)", errNotBool, out.Type())
	}
	return bool(b), nil
}

// filterVars binds the filter's variables to one request, converting each
// only when the expression reads it, at most once per evaluation. One
// evaluation runs on one goroutine, so no locking is needed.
//
// The bindings are pooled with their maps and the CEL values that wrap
// them, so an evaluation that reads headers and static body paths
// allocates neither maps nor wrappers: an evaluation never keeps a
// reference to its activation once it returned (Match looks at nothing
// but the result's type after that, and a result that is one of these
// maps is a map, which Validate refuses as a filter's output).
type filterVars struct {
	f       *Filter
	r       *Request
	body    ref.Val
	headers ref.Val
	query   ref.Val

	// Kept across evaluations, cleared between them.
	headerMap, queryMap map[string]string
	headerVal, queryVal ref.Val // wrap headerMap and queryMap
	partial             map[string]any
	partialVal          ref.Val  // wraps partial
	spans               [][2]int // of Filter.firstNames
}

var filterVarsPool = sync.Pool{New: func() any {
	v := &filterVars{
		headerMap: map[string]string{},
		queryMap:  map[string]string{},
		partial:   map[string]any{},
	}
	v.headerVal = types.DefaultTypeAdapter.NativeToValue(v.headerMap)
	v.queryVal = types.DefaultTypeAdapter.NativeToValue(v.queryMap)
	v.partialVal = types.DefaultTypeAdapter.NativeToValue(v.partial)
	return v
}}

// release clears the bindings of one evaluation and pools them again.
func (v *filterVars) release() {
	v.f, v.r, v.body, v.headers, v.query = nil, nil, nil, nil, nil
	clear(v.headerMap)
	clear(v.queryMap)
	clear(v.partial)
	filterVarsPool.Put(v)
}

// ResolveName implements interpreter.Activation.
func (v *filterVars) ResolveName(name string) (any, bool) {
	switch name {
	case filterVarBody:
		if v.body == nil {
			v.body = v.bodyValue()
		}
		return v.body, true
	case filterVarRaw:
		return string(v.r.Body), true
	case filterVarHeaders:
		if v.headers == nil {
			firstValuesInto(v.headerMap, v.r.Header, v.f.headerNames)
			v.headers = v.headerVal
		}
		return v.headers, true
	case filterVarQuery:
		if v.query == nil {
			firstValuesInto(v.queryMap, v.r.QueryValues(), v.f.queryNames)
			v.query = v.queryVal
		}
		return v.query, true
	case filterVarMethod:
		return v.r.Method, true
	case filterVarPath:
		return v.r.Path, true
	case filterVarJWT:
		if v.r.JWTClaims == nil {
			return map[string]any{}, true
		}
		return v.r.JWTClaims, true
	}
	return nil, false
}

// bodyValue is filterBody, with the static paths' values gathered in the
// pooled map.
func (v *filterVars) bodyValue() ref.Val {
	r, f := v.r, v.f
	if f.bodyPaths == nil || r.IsForm() {
		return filterBody(r, f.bodyPaths, f.bodyKeys)
	}
	v.spans = slices.Grow(v.spans[:0], len(f.firstNames))[:len(f.firstNames)]
	clear(v.spans)
	r.jsonRead.Store(true)
	err, captured := r.checkedJSONMembers(f.firstNames, v.spans)
	if err != nil || !looksLikeJSONObject(r.Body) {
		return filterBody(r, f.bodyPaths, f.bodyKeys)
	}
	for i, path := range f.bodyPaths {
		if !captured {
			insertPath(v.partial, r.Body, path, f.bodyKeys[i])
			continue
		}
		// The scan found where the first name's value is: no second
		// search through the body.
		span := v.spans[f.firstOf[i]]
		if span == [2]int{} {
			continue // absent
		}
		insertPathFrom(v.partial, gjson.ParseBytes(r.Body[span[0]:span[1]]), path, f.bodyKeys[i])
	}
	return v.partialVal
}

// Parent implements interpreter.Activation: there is none.
func (*filterVars) Parent() interpreter.Activation { return nil }

// filterBody is the `body` variable: the form fields (first values) of a
// form body, else the JSON value, else null. With static paths (and their
// keys escaped for gjson), only the subtrees the expression reads are extracted
// from the raw JSON; the result is the same for every expression that
// reads body only through those paths, since any other use of body turned
// paths off. An object body was already validated by the hostile-JSON
// scan, so it is neither validated nor copied again here.
func filterBody(r *Request, paths, keys [][]string) ref.Val {
	if r.IsForm() {
		return types.DefaultTypeAdapter.NativeToValue(firstValues(r.Form()))
	}
	if paths == nil {
		if v, ok := r.JSON(); ok {
			return types.DefaultTypeAdapter.NativeToValue(v)
		}
		return types.NullValue
	}
	if !r.jsonReadable() {
		return types.NullValue
	}
	if !looksLikeJSONObject(r.Body) {
		// A scalar or array body: no field of it exists; keep its value.
		if !gjson.ValidBytes(r.Body) {
			return types.NullValue
		}
		return types.DefaultTypeAdapter.NativeToValue(gjson.ParseBytes(r.Body).Value())
	}
	partial := make(map[string]any, len(paths))
	for i, path := range paths {
		insertPath(partial, r.Body, path, keys[i])
	}
	return types.DefaultTypeAdapter.NativeToValue(partial)
}

// insertPath copies the value at path (keys: the same names escaped for
// gjson) from the JSON object body into m, creating intermediate objects only where the JSON
// has objects; absent fields stay absent, as in a full decode.
func insertPath(m map[string]any, body []byte, path, keys []string) {
	insertPathFrom(m, gjson.GetBytes(body, keys[0]), path, keys) // no copy of the whole body
}

// insertPathFrom is insertPath given the value of the path's first name
// in the body.
func insertPathFrom(m map[string]any, first gjson.Result, path, keys []string) {
	var obj gjson.Result
	for i, esc := range keys {
		var res gjson.Result
		if i == 0 {
			res = first
		} else {
			res = obj.Get(esc)
		}
		if !res.Exists() {
			return
		}
		name := path[i]
		if i == len(keys)-1 || !res.IsObject() {
			// The last key, or a non-object the path cannot go through
			// (CEL then reports the missing field as a full decode would).
			if _, done := m[name].(map[string]any); !done || i == len(keys)-1 {
				m[name] = celValue(res)
			}
			return
		}
		next, ok := m[name].(map[string]any)
		if !ok {
			if _, set := m[name]; set {
				return // already the whole subtree from a shorter path
			}
			next = map[string]any{}
			m[name] = next
		}
		m, obj = next, res
	}
}

// celValue is the value of res as the bindings hold it: a scalar as the
// CEL value that types.DefaultTypeAdapter would make of res.Value() (so
// CEL reads it without converting and boxing it again), an object or
// array as res.Value().
func celValue(res gjson.Result) any {
	switch res.Type {
	case gjson.String:
		return types.String(res.Str)
	case gjson.Number:
		return types.Double(res.Num)
	case gjson.True:
		return types.True
	case gjson.False:
		return types.False
	case gjson.Null:
		return types.NullValue
	}
	return res.Value()
}

// firstValuesInto sets out to firstValues of only the given names, or of
// all of them when names is nil.
func firstValuesInto(out map[string]string, vals map[string][]string, names []string) {
	if names == nil {
		for k, vs := range vals {
			if len(vs) > 0 {
				out[k] = vs[0]
			}
		}
		return
	}
	for _, k := range names {
		if vs := vals[k]; len(vs) > 0 {
			out[k] = vs[0]
		}
	}
}

// firstValues flattens a header or query set to the first value of each
// name, as a sender's single-valued fields are read everywhere else.
func firstValues(vals map[string][]string) map[string]string {
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}

// Interface guard: the bindings are a CEL activation.
var _ interpreter.Activation = (*filterVars)(nil)
