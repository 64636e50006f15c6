/** An email address input: the browser checks it before the form is sent, and autofill offers the
 * visitor's own. `errorId` names the element that says what is wrong with it, if anything. */
export function EmailInput(props: {
  id: string;
  value: string;
  onChange: (value: string) => void;
  readOnly?: boolean;
  errorId?: string;
}) {
  const { id, value, onChange, readOnly, errorId } = props;
  return (
    <input
      id={id}
      type="email"
      autoComplete="email"
      required
      value={value}
      readOnly={readOnly}
      onChange={(event) => onChange(event.target.value)}
      aria-invalid={errorId !== undefined}
      aria-describedby={errorId}
    />
  );
}
