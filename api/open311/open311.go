// Package open311 is Open311 GeoReport v2 at /open311/v2, JSON only, so that existing
// citizen-reporting apps can post and follow requests: a service is an
// incident subclass (service_code = category code), a service request is an
// incident, agency_responsible is its grid. Errors take the spec's form,
// [{"code":400,"description":"…"}], with the same HTTP status — except 401
// and 403, which the authorisation layer answers before these handlers run.
// Its routes (Routes) and their query parameters (Query) are gathered by
// package api into its one table; the handlers are httpapi.Handlers whose
// errors writeError puts in GeoReport's form.
package open311

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
)

const (
	// open311Window is the span GET requests.json covers when given no
	// dates, as the spec suggests (the last 90 days).
	open311Window = 90 * 24 * time.Hour
	// open311MaxRequests caps the requests one GET returns (the spec's 1000).
	open311MaxRequests = 1000
	// open311MaxIDs caps the ids of one service_request_id list.
	open311MaxIDs = 100
	// open311TitleRunes is how much of the description becomes the title.
	open311TitleRunes = 60
)

// Deps are what Open311 needs from the rest of the service.
type Deps struct {
	Incidents *incident.Service
	// LeaderReportOutside: see api.Deps.
	LeaderReportOutside bool
}

// Service serves the Open311 routes.
type Service struct{ deps Deps }

// New returns the Open311 service.
func New(deps Deps) *Service { return &Service{deps: deps} }

// jurisdiction is the parameter every GeoReport v2 call may name (one
// jurisdiction here: accepted and ignored, as the spec allows).
const jurisdiction = "jurisdiction_id"

// Query lists, for every route of Routes as "METHOD /path", the query
// parameters it reads (api checks them before the handler runs).
var Query = map[string][]string{
	"GET /open311/v2/services.json":  {jurisdiction},
	"GET /open311/v2/services/:file": {jurisdiction},
	"POST /open311/v2/requests.json": {jurisdiction, "crs"},
	"GET /open311/v2/requests.json":  {jurisdiction, "service_request_id", "service_code", "start_date", "end_date", "status"},
	"GET /open311/v2/requests/:file": {jurisdiction},
	"GET /open311/v2/services.xml":   {jurisdiction},
	"GET /open311/v2/requests.xml":   {jurisdiction},
	"POST /open311/v2/requests.xml":  {jurisdiction},
}

// Bodies are the routes whose body is a form (or, when so labelled, JSON)
// rather than one JSON document.
var Bodies = []string{"POST /open311/v2/requests.json", "POST /open311/v2/requests.xml"}

// Routes is GeoReport v2, for citizen-reporting apps: the service
// list is public; requests need an integration key (api_key or bearer).
// Every error, the input checks' included, takes GeoReport's form.
func (s *Service) Routes() []httpapi.Route {
	routes := []httpapi.Route{
		httpapi.R("GET", "/open311/v2/services.json", auth.Public, s.open311Services),
		httpapi.R("GET", "/open311/v2/services/:file", auth.Public, s.open311Service),
		httpapi.KeyParam(httpapi.R("POST", "/open311/v2/requests.json", auth.IncidentsCreate, s.open311CreateRequest)),
		httpapi.KeyParam(httpapi.R("GET", "/open311/v2/requests.json", auth.IncidentsRead, s.open311Requests)),
		httpapi.KeyParam(httpapi.R("GET", "/open311/v2/requests/:file", auth.IncidentsRead, s.open311Request)),
		httpapi.R("GET", "/open311/v2/services.xml", auth.Public, s.open311XML),
		httpapi.R("GET", "/open311/v2/requests.xml", auth.Public, s.open311XML),
		httpapi.R("POST", "/open311/v2/requests.xml", auth.Public, s.open311XML),
	}
	for i := range routes {
		routes[i].Errors = writeError
	}
	return routes
}

// writeError answers err in GeoReport's error format. Internal
// errors are logged (by httpapi.ProblemOf) and shown as a plain message
// with the request id; the database out of reach stays a 500 here, as
// GeoReport clients knew it.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	p := httpapi.ProblemOf(c, log, err)
	if p.Internal {
		p.Status, p.Message = http.StatusInternalServerError, "internal error (request id "+c.GetString("request_id")+")"
	}
	c.AbortWithStatusJSON(p.Status, []gin.H{{"code": p.Status, "description": p.Message}})
}

// open311File reads a resource name such as 0101.json: the part before
// .json. Only JSON is served: .xml is a 400 that says so.
func open311File(file, collection string) (string, error) {
	ext := path.Ext(file)
	base := strings.TrimSuffix(file, ext)
	switch {
	case ext == ".json" && base != "":
		return base, nil
	case strings.EqualFold(ext, ".xml"):
		return "", httpapi.Errorf(http.StatusBadRequest, "unsupported_format", "only JSON is served here: ask for %s/%s.json", collection, base)
	}
	return "", httpapi.Errorf(http.StatusNotFound, "not_found", "no such resource %s/%s: ask for %s/{id}.json", collection, file, collection)
}

// open311ServiceDoc is one entry of services.json.
type open311ServiceDoc struct {
	ServiceCode string `json:"service_code"`
	ServiceName string `json:"service_name"`
	Description string `json:"description"`
	Metadata    bool   `json:"metadata"`
	Type        string `json:"type"`
	Keywords    string `json:"keywords"`
	Group       string `json:"group"`
}

// open311Catalogue returns the services — the incident subclasses — in
// code order.
func (s *Service) open311Catalogue(c *gin.Context) ([]open311ServiceDoc, error) {
	cats, err := s.deps.Incidents.Categories(c.Request.Context())
	if err != nil {
		return nil, err
	}
	classes := map[string]string{}
	for _, cat := range cats {
		if cat.ParentCode == nil {
			classes[cat.Code] = cat.Name
		}
	}
	out := []open311ServiceDoc{}
	for _, cat := range cats {
		if cat.ParentCode == nil {
			continue
		}
		class := classes[*cat.ParentCode]
		out = append(out, open311ServiceDoc{
			ServiceCode: cat.Code,
			ServiceName: cat.Name,
			Description: fmt.Sprintf("%s · %s：处置时限 %d 小时 (handled within %d hours)", class, cat.Name, cat.DeadlineHours, cat.DeadlineHours),
			Metadata:    false,
			Type:        "realtime",
			Keywords:    class + ", " + cat.Name,
			Group:       class,
		})
	}
	return out, nil
}

func open311FindService(services []open311ServiceDoc, code string) (open311ServiceDoc, bool) {
	i := slices.IndexFunc(services, func(sv open311ServiceDoc) bool { return sv.ServiceCode == code })
	if i < 0 {
		return open311ServiceDoc{}, false
	}
	return services[i], true
}

func (s *Service) open311Services(c *gin.Context) error {
	services, err := s.open311Catalogue(c)
	return httpapi.JSON(c, http.StatusOK, services, err)
}

// open311Service is a service definition: we ask for no attributes beyond
// the spec's own fields.
func (s *Service) open311Service(c *gin.Context) error {
	code, err := open311File(c.Param("file"), "services")
	if err != nil {
		return err
	}
	services, err := s.open311Catalogue(c)
	if err != nil {
		return err
	}
	if _, ok := open311FindService(services, code); !ok {
		return gridwatch.Errorf(gridwatch.ENotFound, "service_code %q not found: services.json lists them", code)
	}
	c.JSON(http.StatusOK, gin.H{"service_code": code, "attributes": []any{}})
	return nil
}

// open311Args are the POST arguments read; the rest (jurisdiction_id,
// email, first_name, last_name, phone, device_id, account_id, media_url,
// attribute[…]) are accepted and not kept.
var open311Args = []string{"service_code", "lat", "long", "address_string", "address_id", "description"}

// open311Form reads a POST's arguments: form-encoded (as the spec has
// them) or multipart, or a JSON object of strings and numbers.
func open311Form(c *gin.Context) (map[string]string, error) {
	out := map[string]string{}
	if c.ContentType() == gin.MIMEJSON {
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			return nil, err
		}
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not a JSON object: %v", err)
		}
		for k, v := range raw {
			switch x := v.(type) {
			case string:
				out[k] = x
			case json.Number:
				out[k] = x.String()
			case nil:
			default:
				if slices.Contains(open311Args, k) {
					return nil, incident.FieldError(k, "want a string or a number")
				}
			}
		}
		return out, nil
	}
	if err := c.Request.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "the form body is not valid: %v", err)
	}
	for k, vs := range c.Request.PostForm {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out, nil
}

// open311Coord reads lat or long.
func open311Coord(form map[string]string, field string, limit float64) (float64, error) {
	v := strings.TrimSpace(form[field])
	if v == "" {
		return 0, incident.FieldError(field, "is required: lat and long locate the request (this server does not geocode address_string or address_id)")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, incident.FieldError(field, "%q is not a number", v)
	}
	if f < -limit || f > limit {
		return 0, incident.FieldError(field, "%v is out of range [-%v, %v]", f, limit, limit)
	}
	return f, nil
}

// open311Title is the first 60 characters of the description's text, or
// the service's name when there is no description.
func open311Title(description, service string) string {
	line := strings.Join(strings.Fields(description), " ")
	if line == "" {
		return service
	}
	if utf8.RuneCountInString(line) > open311TitleRunes {
		line = string([]rune(line)[:open311TitleRunes]) + "…"
	}
	return line
}

// open311Names maps incident fields to the Open311 arguments they come from.
var open311Names = map[string]string{"category": "service_code", "address": "address_string", "title": "description", "location": "lat"}

// open311Rename makes an incident field error name the Open311 argument.
func open311Rename(err error) error {
	f, _ := gridwatch.ErrorDetails(err)["field"].(string)
	name, ok := open311Names[f]
	if !ok || gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		return err
	}
	return incident.FieldError(name, "%s", strings.TrimPrefix(gridwatch.ErrorMessage(err), f+": "))
}

// open311CreateRequest files a citizen's report: POST requests.json with
// service_code, lat, long (honouring ?crs=), address_string, description.
// An Idempotency-Key header makes a retry return the first request (200).
func (s *Service) open311CreateRequest(c *gin.Context) error {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return err
	}
	form, err := open311Form(c)
	if err != nil {
		return err
	}
	code := strings.TrimSpace(form["service_code"])
	if code == "" {
		return incident.FieldError("service_code", "is required: a service_code from services.json")
	}
	services, err := s.open311Catalogue(c)
	if err != nil {
		return err
	}
	service, ok := open311FindService(services, code)
	if !ok {
		return incident.FieldError("service_code", "%q is not a service code: services.json lists them", code)
	}
	lat, err := open311Coord(form, "lat", 90)
	if err != nil {
		return err
	}
	long, err := open311Coord(form, "long", 180)
	if err != nil {
		return err
	}
	description := strings.TrimSpace(form["description"])
	report, _ := json.Marshal(map[string]any{
		"source":      "citizen",
		"category":    code,
		"title":       open311Title(description, service.ServiceName),
		"description": description,
		"address":     strings.TrimSpace(form["address_string"]),
		"location":    map[string]any{"type": "Point", "coordinates": []float64{long, lat}},
	})
	n, err := incident.ParseNew(report, crs, s.deps.Incidents.Now())
	if err != nil {
		return open311Rename(err)
	}
	if n.IdempotencyKey = strings.TrimSpace(c.GetHeader("Idempotency-Key")); len(n.IdempotencyKey) > 200 {
		return gridwatch.Errorf(gridwatch.EInvalid, "the Idempotency-Key header is longer than 200 characters")
	}
	in, created, err := s.deps.Incidents.Create(c.Request.Context(), n, httpapi.Reporter(s.deps.LeaderReportOutside, httpapi.Principal(c)), httpapi.IncidentViewer(httpapi.Principal(c)))
	if err != nil {
		return open311Rename(err)
	}
	id := strconv.FormatInt(in.ID, 10)
	c.Header("Location", "/open311/v2/requests/"+id+".json")
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // a retry: the request first filed
	}
	c.JSON(status, []gin.H{{"service_request_id": id, "service_notice": open311Notice(in), "account_id": nil}})
	return nil
}

// open311RequestDoc is a service request as GET requests.json shows it.
type open311RequestDoc struct {
	ServiceRequestID  string  `json:"service_request_id"`
	Status            string  `json:"status"`
	StatusNotes       string  `json:"status_notes"`
	ServiceName       string  `json:"service_name"`
	ServiceCode       string  `json:"service_code"`
	Description       string  `json:"description"`
	AgencyResponsible *string `json:"agency_responsible"`
	ServiceNotice     string  `json:"service_notice"`
	RequestedDatetime string  `json:"requested_datetime"`
	UpdatedDatetime   string  `json:"updated_datetime"`
	ExpectedDatetime  string  `json:"expected_datetime"`
	Address           string  `json:"address"`
	AddressID         *string `json:"address_id"`
	Zipcode           *string `json:"zipcode"`
	Lat               float64 `json:"lat"`
	Long              float64 `json:"long"`
	MediaURL          *string `json:"media_url"`
}

// open311StatusLabels say where a case stands, for status_notes.
var open311StatusLabels = map[incident.Status]string{
	incident.Reported:   "已上报，待立案",
	incident.Registered: "已立案，待派遣",
	incident.Dispatched: "已派遣",
	incident.InProgress: "处置中",
	incident.Handled:    "已处置，待核查",
	incident.Verified:   "已核查，待结案",
	incident.Closed:     "已结案",
	incident.Rejected:   "不予立案",
	incident.Returned:   "已退回，待重新派遣",
}

func open311Agency(in *incident.Incident) *string {
	if in.Grid == nil {
		return nil
	}
	a := in.Grid.Name + " (" + in.Grid.Code + ")"
	return &a
}

func open311Notice(in *incident.Incident) string {
	notice := "处置期限 (deadline) " + in.Deadline.Format(time.RFC3339)
	if a := open311Agency(in); a != nil {
		notice = "由 " + *a + " 处置 (handled by the grid)；" + notice
	} else {
		notice = "未落入任何网格，由指挥中心分派 (in no grid: the command centre assigns it)；" + notice
	}
	if in.Overdue {
		notice += "；已超期 (overdue)"
	}
	return notice
}

// open311RequestOf maps an incident: status closed for closed and rejected
// cases, open for the rest; status_notes the workflow step, with the note
// of the last step when the history is at hand.
func open311RequestOf(in *incident.Incident) open311RequestDoc {
	status := "closed"
	if in.Status.Open() {
		status = "open"
	}
	notes := open311StatusLabels[in.Status] + " (" + string(in.Status) + ")"
	if n := len(in.History); n > 0 && in.History[n-1].Note != "" {
		notes += ": " + in.History[n-1].Note
	}
	return open311RequestDoc{
		ServiceRequestID:  strconv.FormatInt(in.ID, 10),
		Status:            status,
		StatusNotes:       notes,
		ServiceName:       in.CategoryName,
		ServiceCode:       in.Category,
		Description:       in.Description,
		AgencyResponsible: open311Agency(in),
		ServiceNotice:     open311Notice(in),
		RequestedDatetime: in.ReportedAt.Format(time.RFC3339),
		UpdatedDatetime:   in.UpdatedAt.Format(time.RFC3339),
		ExpectedDatetime:  in.Deadline.Format(time.RFC3339),
		Address:           in.Address,
		Lat:               in.Location.Coordinates[1],
		Long:              in.Location.Coordinates[0],
	}
}

// open311Requests answers GET requests.json: service_request_id (a comma
// list; it overrides the other arguments), or service_code (comma list),
// start_date, end_date (both inclusive; default the last 90 days) and
// status (open, closed or both). Newest first, at most 1000. An
// integration token sees its own requests only.
func (s *Service) open311Requests(c *gin.Context) error {
	ctx := c.Request.Context()
	v := httpapi.IncidentViewer(httpapi.Principal(c))
	out := []open311RequestDoc{}
	if list := c.Query("service_request_id"); list != "" {
		parts := strings.Split(list, ",")
		if len(parts) > open311MaxIDs {
			return incident.FieldError("service_request_id", "lists %d ids; at most %d at once", len(parts), open311MaxIDs)
		}
		for _, p := range parts {
			id, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil || id <= 0 {
				return incident.FieldError("service_request_id", "%q is not a service request id", p)
			}
			in, err := s.deps.Incidents.Get(ctx, id, v)
			if gridwatch.ErrorCode(err) == gridwatch.ENotFound {
				continue // the spec lists what is found
			}
			if err != nil {
				return err
			}
			out = append(out, open311RequestOf(in))
		}
		c.JSON(http.StatusOK, out)
		return nil
	}

	f := incident.Filter{Limit: open311MaxRequests}
	var start, end time.Time
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"start_date", &start}, {"end_date", &end}} {
		if val := c.Query(tp.name); val != "" {
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				return incident.FieldError(tp.name, "%q is not a w3c datetime such as 2026-11-01T00:00:00+08:00", val)
			}
			*tp.dst = t
		}
	}
	switch {
	case !start.IsZero() && !end.IsZero() && end.Before(start):
		return incident.FieldError("end_date", "%s is before start_date %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	case start.IsZero() && end.IsZero():
		f.From = time.Now().Add(-open311Window)
	case start.IsZero():
		f.From = end.Add(-open311Window)
	default:
		f.From = start
	}
	if !end.IsZero() {
		f.To = end.Add(time.Microsecond) // end_date is inclusive; the database keeps microseconds
	}
	if st := c.Query("status"); st != "" {
		var open, closed bool
		for _, x := range strings.Split(st, ",") {
			switch strings.TrimSpace(x) {
			case "open":
				open = true
			case "closed":
				closed = true
			default:
				return incident.FieldError("status", "%q is not open or closed", x)
			}
		}
		if open != closed {
			for _, status := range incident.Statuses() {
				if status.Open() == open {
					f.Statuses = append(f.Statuses, status)
				}
			}
		}
	}
	codes := []string{""}
	if list := c.Query("service_code"); list != "" {
		services, err := s.open311Catalogue(c)
		if err != nil {
			return err
		}
		codes = nil
		for _, code := range strings.Split(list, ",") {
			code = strings.TrimSpace(code)
			if _, ok := open311FindService(services, code); !ok {
				return incident.FieldError("service_code", "%q is not a service code: services.json lists them", code)
			}
			if !slices.Contains(codes, code) {
				codes = append(codes, code)
			}
		}
	}
	var found []incident.Incident
	for _, code := range codes {
		f.Category = code
		list, _, err := s.deps.Incidents.List(ctx, f, v)
		if err != nil {
			return err
		}
		found = append(found, list...)
	}
	slices.SortFunc(found, func(a, b incident.Incident) int { return cmp.Compare(b.ID, a.ID) })
	if len(found) > open311MaxRequests {
		found = found[:open311MaxRequests]
	}
	for i := range found {
		out = append(out, open311RequestOf(&found[i]))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// open311Request answers GET requests/{id}.json: a list of the one request.
func (s *Service) open311Request(c *gin.Context) error {
	base, err := open311File(c.Param("file"), "requests")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(base, 10, 64)
	if err != nil || id <= 0 {
		return gridwatch.Errorf(gridwatch.ENotFound, "service request %q not found", base)
	}
	in, err := s.deps.Incidents.Get(c.Request.Context(), id, httpapi.IncidentViewer(httpapi.Principal(c)))
	if gridwatch.ErrorCode(err) == gridwatch.ENotFound {
		return gridwatch.Errorf(gridwatch.ENotFound, "service request %d not found", id)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, []open311RequestDoc{open311RequestOf(in)})
	return nil
}

// open311XML answers the XML forms of the collections: only JSON is served.
func (s *Service) open311XML(c *gin.Context) error {
	name := strings.TrimSuffix(path.Base(c.Request.URL.Path), ".xml")
	return httpapi.Errorf(http.StatusBadRequest, "unsupported_format", "only JSON is served here: ask for %s.json", name)
}
