package control

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"

	"flowlog/internal/awsformat"
	"flowlog/internal/desired"
)

// FileOutputInput is the settings of output type file to set (nil:
// unchanged, or the default on create).
type FileOutputInput struct {
	OutputDir        *string `json:"output_dir"`
	LogFormat        *string `json:"log_format"`
	FileFormat       *string `json:"file_format"`
	PerHourPartition *bool   `json:"per_hour_partition"`
}

// checkFileOutput validates the settings given: a directory relative to
// the account's part of the server's file directory, an AWS log format,
// and an AWS file format.
func checkFileOutput(in *FileOutputInput) error {
	if in == nil {
		return nil
	}
	if dir := in.OutputDir; dir != nil && (len(*dir) > 255 || !filepath.IsLocal(filepath.FromSlash(*dir)) || strings.ContainsAny(*dir, "\\\x00")) {
		return illegal("output_dir", "must be a relative path inside the server's file directory, without '..': %q", *dir)
	}
	if in.LogFormat != nil {
		if _, err := awsformat.Parse(*in.LogFormat, ""); err != nil {
			return illegal("log_format", "%s", strings.TrimPrefix(err.Error(), awsformat.ErrFormat.Error()+": "))
		}
	}
	return checkOneOf("file_format", in.FileFormat, desired.FilePlainText, desired.FileParquet)
}

// merge sets the given settings in f's.
func (in *FileOutputInput) merge(f *FlowLog) {
	if in == nil {
		return
	}
	fo := desired.FileOutput{}
	if f.File != nil {
		fo = *f.File
	}
	set(&fo.OutputDir, in.OutputDir)
	set(&fo.LogFormat, in.LogFormat)
	set(&fo.FileFormat, in.FileFormat)
	set(&fo.PerHourPartition, in.PerHourPartition)
	f.File = &fo
}

// resolveFileOutput requires the settings of output type file, fills
// their defaults, and drops them for other output types.
func resolveFileOutput(f *FlowLog) error {
	if f.OutputType != OutputFile {
		f.File = nil
		return nil
	}
	if f.File == nil || f.File.OutputDir == "" {
		return missing("output_dir")
	}
	fo := *f.File
	format, err := awsformat.Parse(fo.LogFormat, f.Region) // the format is checked by checkFileOutput
	if err != nil {
		return illegal("region", "must be a name of letters, digits, '-', '_' and '.' for output type file: %q", f.Region)
	}
	fo.LogFormat, fo.Region = format.String(), ""
	if fo.FileFormat == "" {
		fo.FileFormat = desired.FilePlainText
	}
	fo.OutputDir = filepath.ToSlash(filepath.Clean(filepath.FromSlash(fo.OutputDir)))
	f.File = &fo
	return nil
}

func saveFileOutput(ctx context.Context, tx *sql.Tx, f *FlowLog) error {
	var b []byte
	if f.File != nil {
		var err error
		if b, err = json.Marshal(f.File); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE flow_logs SET file_output = ? WHERE id = ?`, string(b), f.ID)
	return err
}

func fileOutputOf(ctx context.Context, q querier, id string) (*desired.FileOutput, error) {
	var s string
	err := q.QueryRowContext(ctx, `SELECT file_output FROM flow_logs WHERE id = ?`, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) || s == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeFileOutput(s)
}

func decodeFileOutput(s string) (*desired.FileOutput, error) {
	var fo desired.FileOutput
	if err := json.Unmarshal([]byte(s), &fo); err != nil {
		return nil, err
	}
	return &fo, nil
}

// allFileOutputs reads the settings of every flow log of output type
// file, with its region, by flow log.
func allFileOutputs(ctx context.Context, q querier) (map[string]*desired.FileOutput, error) {
	type row struct {
		id, region, file string
	}
	rows, err := queryAll(ctx, q, func(r scanner) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.region, &x.file)
	}, `SELECT id, region, file_output FROM flow_logs WHERE file_output <> ''`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*desired.FileOutput, len(rows))
	for _, x := range rows {
		fo, err := decodeFileOutput(x.file)
		if err != nil {
			return nil, err
		}
		fo.Region = x.region
		out[x.id] = fo
	}
	return out, nil
}

// desiredFileOutputs gives the desired flow logs of output type file their
// settings, with the flow log's region for the records.
func desiredFileOutputs(ctx context.Context, q querier, fls []desired.FlowLog) error {
	files, err := allFileOutputs(ctx, q)
	for i := range fls {
		fls[i].File = files[fls[i].ID]
	}
	return err
}
